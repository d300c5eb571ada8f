"""The driver's pipeline: command line, session, run plan, stages, features store, PCA, probe, model
folder, report and manifest."""
