DROP TABLE spent_tickets;
