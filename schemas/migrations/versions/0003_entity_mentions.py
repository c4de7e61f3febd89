"""entity mentions in the full text, and the analyst views over entities

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        create table core.entity_mentions (
            paper_id text not null,
            curie text not null references core.entities (curie),
            section_ordinal integer not null,
            mention_count integer not null check (mention_count >= 1),
            first_offset integer not null check (first_offset >= 0),
            run_id uuid not null references ops.runs (run_id),
            source_sha256 text not null check (source_sha256 ~ '^[0-9a-f]{64}$'),
            primary key (paper_id, curie, section_ordinal),
            foreign key (paper_id, section_ordinal)
                references core.sections (paper_id, ordinal) on delete cascade
        );
        create index on core.entity_mentions (curie);
        comment on table core.entity_mentions is 'how often each entity a paper lists is mentioned in each section of its full text';
        comment on column core.entity_mentions.paper_id is 'the paper (core.papers)';
        comment on column core.entity_mentions.curie is 'the entity (core.entities)';
        comment on column core.entity_mentions.section_ordinal is 'the section (core.sections.ordinal)';
        comment on column core.entity_mentions.mention_count is 'matches of the entity''s names in the section, by the rules in README';
        comment on column core.entity_mentions.first_offset is 'character offset of the first match within core.sections.text';
        comment on column core.entity_mentions.run_id is 'ops.runs row of the flow run that last wrote this row';
        comment on column core.entity_mentions.source_sha256 is 'sha256 of the full text the mentions were counted in';

        create view analytics.entity_name_collisions as
        select lower(a.alias) as name,
               count(distinct a.curie) as curie_count,
               array_agg(distinct a.curie order by a.curie) as curies,
               array_agg(distinct e.entity_type order by e.entity_type) as entity_types,
               sum(a.paper_count) as paper_uses
        from core.entity_aliases a join core.entities e using (curie)
        group by lower(a.alias)
        having count(distinct a.curie) > 1;
        comment on view analytics.entity_name_collisions is 'one name (case-insensitive) used for two or more identifiers: not merged, shown here';

        create view analytics.entity_evidence as
        with listed as (
            select distinct paper_id, curie from core.paper_entities
        ), counted as (
            select paper_id, curie, sum(mention_count)::int as mentions,
                   count(*)::int as sections_mentioning, min(section_ordinal) as first_section
            from core.entity_mentions group by paper_id, curie
        ), has_text as (
            select distinct paper_id from core.sections
        )
        select l.paper_id, l.curie, e.entity_type, e.preferred_name,
               h.paper_id is not null as has_fulltext,
               case when h.paper_id is null then null else coalesce(c.mentions, 0) > 0 end as found_in_text,
               coalesce(c.mentions, 0) as mentions,
               coalesce(c.sections_mentioning, 0) as sections_mentioning,
               c.first_section
        from listed l
        join core.entities e using (curie)
        left join counted c using (paper_id, curie)
        left join has_text h using (paper_id);
        comment on view analytics.entity_evidence is 'for each paper and listed entity: whether its full text mentions it (null without full text) and how often';

        create view analytics.paper_evidence as
        select p.paper_id, p.title,
               count(*) as listed_entities,
               count(*) filter (where v.found_in_text) as found_in_text,
               round(avg(case when v.found_in_text then 1.0 else 0.0 end), 3) as share_found
        from core.papers p join analytics.entity_evidence v using (paper_id)
        where v.has_fulltext
        group by p.paper_id, p.title;
        comment on view analytics.paper_evidence is 'per paper with full text: the share of its listed entities that the text mentions';

        create view analytics.paper_entities as
        select p.paper_id, p.title as paper_title, e.curie, e.preferred_name as entity,
               e.entity_type, bool_or(pe.listing = 'linked') as linked,
               coalesce(v.mentions, 0) as mentions
        from core.paper_entities pe
        join core.papers p using (paper_id)
        join core.entities e using (curie)
        left join analytics.entity_evidence v using (paper_id, curie)
        group by p.paper_id, p.title, e.curie, e.preferred_name, e.entity_type, v.mentions;
        comment on view analytics.paper_entities is 'each paper with the entities it lists, their type and mention count';

        create view analytics.entity_papers as
        select e.curie, e.preferred_name as entity, e.entity_type,
               count(distinct pe.paper_id) as papers,
               coalesce(sum(v.mentions), 0)::int as total_mentions
        from core.entities e
        join (select distinct paper_id, curie from core.paper_entities) pe using (curie)
        left join analytics.entity_evidence v using (paper_id, curie)
        group by e.curie, e.preferred_name, e.entity_type;
        comment on view analytics.entity_papers is 'each entity with the number of papers listing it and its mentions across them';

        create view analytics.gene_disease_cooccurrence as
        select g.curie as gene_curie, g.preferred_name as gene,
               d.curie as disease_curie, d.preferred_name as disease,
               count(*) as papers,
               sum(coalesce(gv.mentions, 0))::int as gene_mentions,
               sum(coalesce(dv.mentions, 0))::int as disease_mentions,
               array_agg(gp.paper_id order by gp.paper_id) as paper_ids
        from (select distinct paper_id, curie from core.paper_entities) gp
        join core.entities g on g.curie = gp.curie and g.entity_type = 'gene'
        join (select distinct paper_id, curie from core.paper_entities) dp on dp.paper_id = gp.paper_id
        join core.entities d on d.curie = dp.curie and d.entity_type = 'disease'
        left join analytics.entity_evidence gv on gv.paper_id = gp.paper_id and gv.curie = g.curie
        left join analytics.entity_evidence dv on dv.paper_id = dp.paper_id and dv.curie = d.curie
        group by g.curie, g.preferred_name, d.curie, d.preferred_name;
        comment on view analytics.gene_disease_cooccurrence is 'gene and disease pairs listed by the same papers, with their mention counts in those papers';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        drop view if exists analytics.gene_disease_cooccurrence;
        drop view if exists analytics.entity_papers;
        drop view if exists analytics.paper_entities;
        drop view if exists analytics.paper_evidence;
        drop view if exists analytics.entity_evidence;
        drop view if exists analytics.entity_name_collisions;
        drop table if exists core.entity_mentions;
        """
    )
