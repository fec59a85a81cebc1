"""The process around the model: devices and threads, memory, torchrun ranks, CPU features."""
