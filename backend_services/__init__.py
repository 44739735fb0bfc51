"""The backend MACH services (management, marketing, analysis, generative) and their runtime."""
