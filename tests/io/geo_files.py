"""GEO files written for the tests: a family SOFT file with two platforms, and any text
file from its lines (gzip when the name ends in .gz); shared by the GEO and GDS reader tests."""

from __future__ import annotations

import gzip
from pathlib import Path


def write_lines(path: Path, lines: list[str], gz: bool | None = None) -> Path:
    text = "\n".join(lines) + "\n"
    if gz if gz is not None else path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def platform_section(gpl: str, title: str, rows: list[tuple[str, str, str, str]]) -> list[str]:
    lines = [
        f"^PLATFORM = {gpl}",
        f"!Platform_title = {title}",
        f"!Platform_geo_accession = {gpl}",
        "!Platform_technology = in situ oligonucleotide",
        "!Platform_organism = Homo sapiens",
        '#ID = Affymetrix Probe Set ID LINK_PRE:"https://www.affymetrix.com/LinkServlet?probeset="',
        "#GB_ACC = GenBank Accession Number",
        "#Gene Symbol = A gene symbol, when one is available (from UniGene).",
        "#ENTREZ_GENE_ID = Entrez Gene Database UID",
        "!platform_table_begin",
        "ID\tGB_ACC\tGene Symbol\tENTREZ_GENE_ID",
    ]
    lines += ["\t".join(r) for r in rows]
    lines.append("!platform_table_end")
    return lines


def sample_section(gsm: str, gpl: str, tissue: str, table: list[tuple[str, str]] | None) -> list[str]:
    lines = [
        f"^SAMPLE = {gsm}",
        f"!Sample_title = {tissue} {gsm}",
        f"!Sample_geo_accession = {gsm}",
        "!Sample_status = Public on Jan 01 2010",
        "!Sample_type = RNA",
        "!Sample_channel_count = 1",
        f"!Sample_source_name_ch1 = {tissue}",
        "!Sample_organism_ch1 = Homo sapiens",
        f"!Sample_characteristics_ch1 = tissue: {tissue}",
        "!Sample_characteristics_ch1 = sex: female",
        f"!Sample_platform_id = {gpl}",
    ]
    if table is None:
        return [*lines, "!Sample_data_row_count = 0"]
    lines += [
        f"!Sample_data_row_count = {len(table)}",
        "#ID_REF = ",
        "#VALUE = MAS5-calculated signal intensity",
        "#ABS_CALL = the call in an absolute analysis that indicates if the transcript was present (P), absent (A)",
        "!sample_table_begin",
        "ID_REF\tVALUE\tABS_CALL",
    ]
    lines += [f"{p}\t{v}\tP" for p, v in table]
    lines.append("!sample_table_end")
    return lines


GPL96_ROWS = [("1007_s_at", "U48705", "DDR1 /// MIR4640", "780 /// 100616237"),
              ("1053_at", "M87338", "RFC2", "5982"),
              ("117_at", "X51757", "HSPA6", "3310")]
GPL570_ROWS = [("1552256_a_at", "NM_004900", "SCARB1", "949"),
               ("1552257_a_at", "NM_003844", "TTLL12", "23170"),
               ("1007_s_at", "U48705", "DDR1 /// MIR4640", "780 /// 100616237"),
               ("1053_at", "M87338", "RFC2", "5982")]


def soft_lines() -> list[str]:
    """A two-platform family SOFT file: GPL96 (2 samples), GPL570 (2 samples + one without table)."""
    lines = [
        "^DATABASE = GeoMiame",
        "!Database_name = Gene Expression Omnibus (GEO)",
        "!Database_institute = NCBI NLM NIH",
        "^SERIES = GSE8888",
        "!Series_title = Two platforms, one study",
        "!Series_geo_accession = GSE8888",
        "!Series_platform_id = GPL96",
        "!Series_platform_id = GPL570",
        *[f"!Series_sample_id = GSM{i}" for i in range(1, 6)],
    ]
    lines += platform_section("GPL96", "[HG-U133A] Affymetrix Human Genome U133A Array", GPL96_ROWS)
    lines += platform_section("GPL570", "[HG-U133_Plus_2] Affymetrix Human Genome U133 Plus 2.0 Array", GPL570_ROWS)
    lines += sample_section("GSM1", "GPL96", "liver", [("1007_s_at", "10.5"), ("1053_at", "7.25"), ("117_at", "null")])
    # GSM2 lists its probes in another order and lacks 117_at
    lines += sample_section("GSM2", "GPL96", "brain", [("1053_at", "8.5"), ("1007_s_at", "11")])
    lines += sample_section("GSM3", "GPL570", "liver", [(p[0], str(i + 0.5)) for i, p in enumerate(GPL570_ROWS)])
    lines += sample_section("GSM4", "GPL570", "lung", [(p[0], str(-i)) for i, p in enumerate(GPL570_ROWS)])
    lines += sample_section("GSM5", "GPL570", "lung", None)
    return lines
