"""Where and when tokens are decoded: the named orders, painted orders, the step schedule."""
