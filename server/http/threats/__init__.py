"""HTTP side of the threat map, by audience: ``public`` (citizens and anyone), ``staff`` (the
police's report desk), ``categories`` (the admin's list); ``forms`` reads what they share (the
citizen's cookie, the report form), and Open311 reads it too. The rules are in
``server.actions.threats``.
"""
