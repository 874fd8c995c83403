"""Kidney, tumour and organ segmentation on the reference grid, and segmentation comparison."""
