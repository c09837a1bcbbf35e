"""Who the demo retailer is: its legal entities, stores, and the names and loyalty tiers of its
customers."""

from __future__ import annotations

LEGAL_ENTITIES = (
    # id, name, currency, country, pos_recommendations_enabled, share of customers
    ("USRT", "Demo Retail US Inc.", "USD", "United States", 1, 0.8),
    ("FRRT", "Demo Retail France SAS", "EUR", "France", 0, 0.2),
)
STORES = (
    # id, legal entity, name, channel, city, country, opened_on, weight as home store
    ("USRT-WEB", "USRT", "Online store (US)", "online", None, "United States", "2015-03-01", 0.0),
    ("USRT-NYC", "USRT", "New York Fifth Avenue", "store", "New York", "United States", "2012-05-14", 0.28),
    ("USRT-CHI", "USRT", "Chicago Michigan Avenue", "store", "Chicago", "United States", "2013-09-02", 0.20),
    ("USRT-LAX", "USRT", "Los Angeles Grove", "store", "Los Angeles", "United States", "2014-04-10", 0.20),
    ("USRT-HOU", "USRT", "Houston Galleria", "store", "Houston", "United States", "2016-11-18", 0.12),
    ("USRT-SEA", "USRT", "Seattle Pike Street", "store", "Seattle", "United States", "2018-06-01", 0.10),
    ("USRT-BOS", "USRT", "Boston Newbury Street", "store", "Boston", "United States", "2019-08-23", 0.10),
    ("FRRT-WEB", "FRRT", "Boutique en ligne (FR)", "online", None, "France", "2017-01-15", 0.0),
    ("FRRT-PAR", "FRRT", "Paris Rivoli", "store", "Paris", "France", "2016-03-05", 0.55),
    ("FRRT-LYS", "FRRT", "Lyon Part-Dieu", "store", "Lyon", "France", "2018-10-12", 0.25),
    ("FRRT-MRS", "FRRT", "Marseille Canebiere", "store", "Marseille", "France", "2020-02-20", 0.20),
)
FIRST_NAMES = ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
               "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Chris", "Karen",
               "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley", "Paul", "Emily",
               "Camille", "Louis", "Chloe", "Hugo", "Manon", "Lucas", "Lea", "Jules", "Ines", "Gabriel")
LAST_NAMES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
              "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
              "Perez", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Young", "Allen", "King",
              "Dubois", "Moreau", "Laurent", "Simon", "Michel", "Lefebvre", "Leroy", "Roux", "David", "Bertrand")
LOYALTY_TIERS = ("Bronze", "Silver", "Gold", "Platinum")
