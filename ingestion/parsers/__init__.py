"""Parsers turn files into entry data (dicts the kb validates); they never write anything."""
