"""Per-cycle report (HTML and PDF) and result exports."""
