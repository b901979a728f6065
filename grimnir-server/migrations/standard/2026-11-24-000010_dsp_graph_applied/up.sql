-- The DSP graph a station's engine runs: at most one per station, set by the apply call (or
-- by the station file that declares the graph), with when it was applied.
ALTER TABLE dsp_graphs ADD COLUMN applied_at TIMESTAMP;
