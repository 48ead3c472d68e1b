"""Few-shot classification: CODER-Adapter and Tip-Adapter."""
