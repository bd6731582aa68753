"""App-side services, never run in the worker: the Hub (catalog, downloads, library), runtime install, secrets."""
