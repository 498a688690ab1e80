"""Loaders from the original public file formats to distjudge items (see ``items``)."""
