"""The model's work as pictures: live previews, the order animation, its guess."""
