"""Generation and analysis tools: sampling, the papers' figures, videos, projection."""
