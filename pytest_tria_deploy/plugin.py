"""pytest entry point: options, ini keys and hook wiring; the work lives in the modules beside it."""
