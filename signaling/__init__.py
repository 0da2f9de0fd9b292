"""Socket.IO: namespaces, event schemas, rooms, and the client manager for the mode."""
