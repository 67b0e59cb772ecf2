"""Training: ``run(cfg)`` (validate, build, fit, test, record), its config checks, callbacks, side outputs
and loggers."""
