"""The study export: one zip of CSV tables, a Frictionless descriptor, JSON and pictures."""
