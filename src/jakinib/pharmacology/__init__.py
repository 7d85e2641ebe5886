"""Pharmacology: the JAK-STAT pathway map, drug potency per pathway, PK models and simulations."""
