ALTER TABLE dsp_graphs DROP COLUMN applied_at;
