"""A row's id in a route's path: 1 to 9 ASCII digits, so that it always fits the database's
integer (PostgreSQL's is 32 bits). A longer one matches no route (404 ``not_found``) rather
than overflowing the query (a 500), and the API's document shows the bound."""

ID = r"[0-9]{1,9}"
