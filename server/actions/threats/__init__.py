"""The threat map (KMZB): citizens pin non-urgent threats, the police verify them, all see them.

The rules and the writes, whichever transport asks (``server.http.threats``, ``open311``):

- ``citizens``: a citizen's report (limits, photos, nearby duplicates), "me too", nearby reports;
- ``desk``: the police's list, opening a report, status, forwarding, invitations, from a call;
- ``public``: the map as GeoJSON and CSV, public photos, the author's follow link;
- ``categories``: the category list and its admin; ``stats``: the counts; ``open311``: its queries;
- ``reports``: the one write that stores a new report and emits ``report.new``;
- ``fields``, ``lifecycle``: the checks of what a report says and of the statuses it goes through;
- ``queries``, ``views``, ``photos``: shared reads, what each audience sees, the public copies.
"""
