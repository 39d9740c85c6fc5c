CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, value REAL, note TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000)
INSERT INTO t SELECT x, 'name-' || (x * 7919 % 100003), x * 0.5, printf('%.*c', x % 200, 'x') FROM c;
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(length(note)) FROM t WHERE name LIKE 'name-1%';
SELECT name, count(*) FROM t GROUP BY name ORDER BY count(*) DESC, name LIMIT 3;
