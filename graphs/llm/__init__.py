"""The model seam: the client protocol, the Anthropic SDK client and the offline model."""
