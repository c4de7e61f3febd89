-- tomeflow: questions analysts ask, as queries that run as a reader login
-- (`tomeflow db grant-reader NAME` makes one and prints its psql command; any SQL client works).
-- A reader's search_path is analytics, core: ops and raw need their schema prefix.
-- Each query below is run by tests/load/test_queries.py against a fixed corpus, so it works.
-- The data dictionary (docs/data-dictionary.md) describes every table, view and column.

-- name: diseases_with_a_gene_by_any_of_its_names
-- Which diseases are listed beside a gene, found by any name papers give it (here IDDM2,
-- an alias of INS): analytics.entity_names maps every name and alias to its CURIE, and the
-- co-occurrence view is keyed by CURIE, so spellings never split a gene in two.
select c.gene, c.disease, c.papers, c.paper_ids
from entity_names n
join gene_disease_cooccurrence c on c.gene_curie = n.curie
where n.name_folded = lower('IDDM2')
order by c.papers desc, c.disease;

-- name: evidence_for_an_entity
-- Which papers list insulin, and how often their full texts mention it (null: no full text).
select e.paper_id, e.has_fulltext, e.mentions, e.sections_mentioning
from entity_evidence e
where e.curie = (select curie from entity_names where name_folded = 'insulin' limit 1)
order by e.paper_id;

-- name: listed_but_never_mentioned
-- Entities a paper lists that its (loaded) full text never mentions: worth a second look.
select paper_id, curie, entity_type, preferred_name
from entity_evidence
where has_fulltext and not found_in_text
order by paper_id, curie;

-- name: papers_without_full_text_and_why
-- Papers whose last full-text fetch failed: the status, the cause (dns, connect, timeout,
-- tls, http_status, too_large, bad_content, refused, other) and whether an older full text
-- is still loaded.
select paper_id, fulltext_status, fulltext_cause, has_older_fulltext
from papers_without_fulltext
order by paper_id;

-- name: full_text_search
-- Full-text search over every section (English stemming; "phrases", -not and or work):
-- best matches first, the matches in the snippet between << and >>.
select paper_id, heading, snippet
from search_sections('"insulin resistance" liver')
order by rank desc, paper_id, ordinal
limit 5;

-- name: what_the_last_run_changed
-- The last run against the one before: rows per table, then each paper added, updated or
-- removed from the seeds with what changed.
select kind, item, change, before_rows, now_rows, difference
from run_diff
where kind = 'table' or change is not null
order by kind desc, item;

-- name: runs_and_their_drift_figures
-- Recent runs with the figures the drift gate compares (ops needs its prefix).
select flow_run_name, status, metrics ->> 'papers' as papers,
       metrics ->> 'papers_with_fulltext' as papers_with_fulltext
from ops.runs
order by started_at desc
limit 5;
