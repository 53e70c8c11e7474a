"""Developer tools that are neither the app nor its tests (`python -m scripts.<name>`)."""
