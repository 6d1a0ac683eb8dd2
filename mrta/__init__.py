"""MRTA Explorer: the MultiResolutionTabularAttention layer in PyTorch, with recorded attention."""
