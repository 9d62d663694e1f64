"""After the first bento: tracked runs, the registry and its aliases, shadow replay, promotion."""
