"""opengate's composition root: settings, the app factory, middleware and the CLI."""
