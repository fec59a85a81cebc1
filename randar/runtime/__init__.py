"""The process around the model: memory given back, torchrun ranks and their devices, what the CPU can do."""
