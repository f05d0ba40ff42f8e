"""The catalogue of public data sets: what a published file is (:class:`RemoteFile`), what
a named data set is (:class:`Source`), the registry :data:`SOURCES`, GEO series by
accession (:func:`geo_series`) and the lookup of a name (:func:`resolve`).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from .errors import FetchError

__all__ = ["SOURCES", "RemoteFile", "Source", "geo_series", "geo_series_folder", "list_sources", "resolve"]

PART_SUFFIX = ".part"
GEO_SERIES_ROOT = "https://ftp.ncbi.nlm.nih.gov/geo/series"
GEO_FORM = "geo:GSE12345"

_ALGORITHMS = ("sha512", "sha256", "md5")  # strongest first


def _url_basename(url: str) -> str:
    """The last part of a URL's path, unquoted."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set, as published.

    Parameters
    ----------
    url
        Its canonical ``https://`` address (a mirror rewrites it, see :func:`mirror_url`).
    filename
        Its name in the cache folder; the last part of the URL path by default.
    sha256, sha512, md5
        A checksum the source publishes (lowercase hex), or ``None``.
    size
        Its size in bytes when known in advance, or ``None``.
    """

    url: str
    filename: str = ""
    sha256: str | None = None
    sha512: str | None = None
    md5: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        name = self.filename or _url_basename(self.url)
        if not name or "/" in name or "\\" in name or name.startswith(".") or name.endswith(PART_SUFFIX):
            raise ValueError(f"RemoteFile {self.url!r}: {name!r} is not a usable file name")
        object.__setattr__(self, "filename", name)
        for algo in _ALGORITHMS:
            value = getattr(self, algo)
            if value is not None:
                object.__setattr__(self, algo, value.strip().lower())

    @property
    def checksum(self) -> tuple[str, str] | None:
        """The strongest published checksum as ``(algorithm, hex)``, or ``None``."""
        for algo in _ALGORITHMS:
            value = getattr(self, algo)
            if value:
                return algo, value
        return None


@dataclass(frozen=True)
class Source:
    """A named data set: the files to download and where they come from.

    Parameters
    ----------
    name
        The name users type: ``"gtex-tpm"``, ``"geo:GSE10072"``.
    description
        One or two sentences: what it is, what it holds, caveats about the URL.
    files
        The files, for a data set whose files are fixed.
    citation
        The paper to cite.
    size_hint
        A human size (``"~1.5 GB"``), for listings; approximate.
    checksum_list
        A checksum list the source publishes beside its files (``sha512sum`` format,
        possibly gzipped), used to verify files that carry no checksum of their own.
    index_url
        For a data set whose files are listed in a folder index (a GEO series matrix
        folder): the folder's URL. The links matching ``index_pattern`` are the files.
    index_pattern
        A regular expression the whole base name of a listed link must match.
    index_glob
        The same for people (``"GSE12345*_series_matrix.txt.gz"``), used in messages.
    """

    name: str
    description: str
    files: tuple[RemoteFile, ...] = ()
    citation: str = ""
    size_hint: str = ""
    checksum_list: RemoteFile | None = None
    index_url: str | None = None
    index_pattern: str | None = None
    index_glob: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(self.files))
        if bool(self.files) == bool(self.index_url):
            raise ValueError(f"source {self.name!r} needs either files or an index_url, not both")
        if self.index_url and not self.index_pattern:
            raise ValueError(f"source {self.name!r}: index_url needs an index_pattern")

    @property
    def folder(self) -> str:
        """The name of its folder in the cache (``geo:GSE1`` -> ``geo-GSE1``)."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.name).strip("-.")


def geo_series_folder(accession: str) -> str:
    """GEO's folder for a series: ``GSE12345`` -> ``GSE12nnn``, ``GSE123`` -> ``GSEnnn``."""
    digits = accession.upper().removeprefix("GSE")
    if not digits.isdigit():
        raise FetchError(f"{accession!r} is not a GEO series accession (expected {GEO_FORM})")
    return f"GSE{digits[:-3]}nnn"


def geo_series(accession: str) -> Source:
    """The series matrix files of a GEO series, one per platform.

    Parameters
    ----------
    accession
        ``"GSE12345"`` (any case).

    Returns
    -------
    Source
        Named ``geo:GSE12345``; its files are the ``GSE12345_series_matrix.txt.gz`` or
        ``GSE12345-GPL96_series_matrix.txt.gz`` links of the series' ``matrix/`` folder.
    """
    acc = accession.strip().upper()
    folder = geo_series_folder(acc)
    return Source(
        name=f"geo:{acc}",
        description=f"GEO series {acc}: the series matrix of every platform (samples x probes, with sample annotations).",
        index_url=f"{GEO_SERIES_ROOT}/{folder}/{acc}/matrix/",
        index_pattern=rf"{re.escape(acc)}(-GPL\d+)?_series_matrix\.txt\.gz",
        index_glob=f"{acc}*_series_matrix.txt.gz",
        citation="Barrett et al. (2013) NCBI GEO: archive for functional genomics data sets. Nucleic Acids Res 41:D991.",
        size_hint="varies (KB to GB)",
    )


_GSE92742 = f"{GEO_SERIES_ROOT}/GSE92nnn/GSE92742/suppl"
_GSE92743 = f"{GEO_SERIES_ROOT}/GSE92nnn/GSE92743/suppl"
_GEUV = "https://www.ebi.ac.uk/arrayexpress/files/E-GEUV-1"
_LINCS_CITATION = (
    "Subramanian et al. (2017) A Next Generation Connectivity Map: L1000 platform and the "
    "first 1,000,000 profiles. Cell 171:1437."
)
_GEUV_CITATION = (
    "Lappalainen et al. (2013) Transcriptome and genome sequencing uncovers functional "
    "variation in humans. Nature 501:506."
)

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="lincs-gene-info",
            description=(
                "LINCS L1000 gene annotation (GEO GSE92742): the 12,328 genes of the platform, "
                "pr_is_lm = 1 marking the 978 measured landmarks. Verified against the SHA-512 "
                "list GEO publishes beside it."
            ),
            files=(RemoteFile(f"{_GSE92742}/GSE92742_Broad_LINCS_gene_info.txt.gz"),),
            checksum_list=RemoteFile(f"{_GSE92742}/GSE92742_SHA512SUMS.txt.gz"),
            citation=_LINCS_CITATION,
            size_hint="< 1 MB",
        ),
        Source(
            name="lincs-ols-weights",
            description=(
                "The linear model LINCS uses to infer non-measured genes (GEO GSE92743): OLS "
                "weights, 979 rows (intercept + 978 landmarks) x 11,350 inferred genes, GCTX. "
                "No published checksum; checked for size only."
            ),
            files=(RemoteFile(f"{_GSE92743}/GSE92743_Broad_OLS_WEIGHTS_n979x11350.gctx.gz"),),
            citation=_LINCS_CITATION,
            size_hint="~40 MB",
        ),
        Source(
            name="gtex-tpm",
            description=(
                "GTEx v8 gene TPM (17,382 samples, 54 tissues, 56,200 genes), GCT. "
                "No published checksum; checked for size only."
            ),
            files=(
                RemoteFile(
                    "https://storage.googleapis.com/adult-gtex/bulk-gex/v8/rna-seq/"
                    "GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct.gz"
                ),
            ),
            citation="GTEx Consortium (2020) The GTEx Consortium atlas of genetic regulatory effects across human tissues. Science 369:1318.",
            size_hint="~1.5 GB",
        ),
        Source(
            name="geuvadis",
            description=(
                "GEUVADIS / 1000 Genomes RNA-seq gene RPKM of 462 lymphoblastoid cell lines "
                "(ArrayExpress E-GEUV-1), the '1000G' set of the D-GEX paper. URL as published "
                "in 2013; EBI now serves ArrayExpress through BioStudies and redirects. "
                "No published checksum; checked for size only."
            ),
            files=(RemoteFile(f"{_GEUV}/GD462.GeneQuantRPKM.50FN.samplename.resk10.txt.gz"),),
            citation=_GEUV_CITATION,
            size_hint="~0.1 GB (estimate)",
        ),
        Source(
            name="geuvadis-gd660",
            description=(
                "GEUVADIS gene RPKM of all 660 sequenced libraries, replicates included, before "
                "the 462-sample selection (ArrayExpress E-GEUV-1). URL as published in 2013; "
                "EBI now redirects it. No published checksum; checked for size only."
            ),
            files=(RemoteFile(f"{_GEUV}/GD660.GeneQuantRPKM.txt.gz"),),
            citation=_GEUV_CITATION,
            size_hint="~0.2 GB (estimate)",
        ),
        Source(
            name="archs4-human",
            description=(
                "ARCHS4 human gene-level counts v2.2 (uniformly aligned GEO/SRA RNA-seq, "
                "hundreds of thousands of samples), HDF5. No published checksum; checked "
                "for size only. Very large: check free disk space first."
            ),
            files=(RemoteFile("https://s3.dev.maayanlab.cloud/archs4/files/human_gene_v2.2.h5"),),
            citation="Lachmann et al. (2018) Massive mining of publicly available RNA-seq data from human and mouse. Nat Commun 9:1366.",
            size_hint="tens of GB (estimate: ~40 GB)",
        ),
    )
}


def list_sources() -> list[Source]:
    """The named data sets, in registry order (GEO series, ``geo:GSE…``, come on top)."""
    return list(SOURCES.values())


def resolve(name: str | Source) -> Source:
    """The :class:`Source` for a name, a GEO accession or a ready-made source.

    Parameters
    ----------
    name
        A registry name (``"gtex-tpm"``, any case), ``"geo:GSE12345"`` or ``"GSE12345"``,
        or a :class:`Source`, returned as is.

    Raises
    ------
    FetchError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(name, Source):
        return name
    key = str(name).strip()
    if key.lower() in SOURCES:
        return SOURCES[key.lower()]
    match = re.fullmatch(r"(?:geo:)?(GSE\d+)", key, flags=re.IGNORECASE)
    if match:
        return geo_series(match.group(1))
    known = ", ".join(SOURCES)
    raise FetchError(
        f"unknown data set {key!r}. Known names: {known}; a GEO series is written "
        f"{GEO_FORM} (its series matrix, every platform). `dgex fetch --list` describes them."
    )
