DROP TABLE station_programmes;
