"""Forecasting layer: models, backtests, selection and reconciliation."""
