"""Time-activity fitting per structure and per voxel, and time-integrated activity."""
