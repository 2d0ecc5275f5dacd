"""Servers the tests start for themselves (PostgreSQL...), for any test module or bench."""
