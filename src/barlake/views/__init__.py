"""Renderings shared by the front ends: plots and the HTML report."""
