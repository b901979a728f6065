DROP TABLE station_files;
