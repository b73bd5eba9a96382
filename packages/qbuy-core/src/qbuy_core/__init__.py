"""Shared Django pieces installed by every qbuy image (web, worker, beat)."""
