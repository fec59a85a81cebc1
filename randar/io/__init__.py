"""Reading inputs and writing outputs: images, masks, sidecars, files."""
