#!/usr/bin/env python3
"""Clean the State of the Union corpus and split it by document into training and held-out text.

Input: tools/train_demo/data/sotu/sotu-txt.tar.gz (233 files YEAR_PRESIDENT_PARTY.txt, 1790-2021,
US-government works in the public domain; see LICENSE and SOURCE.txt beside the archive).

Cleaning, per document (each source file is one address on one long line):
  - typographic quotes become ASCII ' and " (GLM's pre-tokenizer only knows ASCII apostrophes in
    contractions, so "it’s" would otherwise split differently from "it's");
  - the em dash becomes "--", en dash and non-breaking hyphen become "-" (the corpus uses both
    spellings; one spelling gives the small model one pattern to learn);
  - transcript stage directions such as "(Applause.)", "[Laughter]" are removed;
  - control characters and bullets are dropped, runs of blanks become one space.
Other non-ASCII letters (é, °, ...) stay: they are rare and keep multi-byte UTF-8 in the data.

Split: files sorted by name; document i is held out when i % 20 == 10 (12 of 233 addresses, one per
~20 years), the rest is training text. Deterministic, no randomness.

Outputs (each document ends with one "\\n"; documents follow each other directly):
  OUT/train.txt          training documents
  OUT/heldout_full.txt   all held-out documents (about 0.5 MB)
  HELDOUT                the committed slice: the first SLICE_CHARS characters of every held-out
                         document, cut after the last sentence end, so every era stays in it while the
                         file stays small enough for quick perplexity runs of the C engine.

Run: python3 tools/train_demo/prepare_corpus.py [--archive A] [--out DIR] [--heldout FILE]
"""
import argparse
import io
import os
import re
import sys
import tarfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_ARCHIVE = os.path.join(REPO, "tools", "train_demo", "data", "sotu", "sotu-txt.tar.gz")
DEFAULT_OUT = os.path.join(REPO, "build", "train_demo", "corpus")
DEFAULT_HELDOUT = os.path.join(REPO, "models", "glmoe-demo", "heldout.txt")

HOLDOUT_EVERY = 20   # one document in 20 is held out: 12 of 233 = 5.2%
HOLDOUT_PHASE = 10
SLICE_CHARS = 16000  # per held-out document in the committed slice; 12 x 16 KB ~ 190 KB

CHAR_MAP = {
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
    "\u2014": "--", "\u2013": "-", "\u2011": "-", "\u2022": "",
}
STAGE = re.compile(
    r"(?P<pre>--\s*)?[\(\[]\s*(?:applause|laughter|cheers|cheering|booing)[^\)\]]{0,40}[\)\]](?P<post>\s*--)?",
    re.IGNORECASE)


def drop_stage_direction(m):
    # "First Lady--(applause)--I'm her husband" keeps one dash; elsewhere the gap becomes a space.
    return "--" if m.group("pre") and m.group("post") else " "


def clean(text):
    text = "".join(CHAR_MAP.get(c, c) for c in text)
    text = "".join(c for c in text if c in "\n\t" or ord(c) >= 32 and c != "\x7f")
    text = STAGE.sub(drop_stage_direction, text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r" ([.,;:!?])", r"\1", text)  # "applause) ." leftovers: "word ." -> "word."
    return text + "\n"


def read_documents(archive):
    docs = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".txt"):
                raw = tar.extractfile(member).read()
                docs.append((os.path.basename(member.name), raw.decode("utf-8")))
    docs.sort()
    return docs


def sentence_slice(text, limit):
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return (cut[:end + 1] if end > 0 else cut) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--archive", default=DEFAULT_ARCHIVE)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--heldout", default=DEFAULT_HELDOUT)
    args = ap.parse_args()

    docs = read_documents(args.archive)
    if len(docs) != 233:
        sys.exit(f"{args.archive}: expected 233 .txt files, found {len(docs)}")
    train, held, held_names = [], [], []
    for i, (name, text) in enumerate(docs):
        if i % HOLDOUT_EVERY == HOLDOUT_PHASE:
            held.append(clean(text))
            held_names.append(name)
        else:
            train.append(clean(text))

    os.makedirs(args.out, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.heldout)), exist_ok=True)
    with io.open(os.path.join(args.out, "train.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(train))
    with io.open(os.path.join(args.out, "heldout_full.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(held))
    with io.open(args.heldout, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(sentence_slice(t, SLICE_CHARS) for t in held))

    size = lambda p: os.path.getsize(p)
    print(f"documents: {len(train)} train, {len(held)} held out: {', '.join(held_names)}")
    print(f"train.txt {size(os.path.join(args.out, 'train.txt'))} bytes, heldout_full.txt "
          f"{size(os.path.join(args.out, 'heldout_full.txt'))} bytes, {args.heldout} {size(args.heldout)} bytes")


if __name__ == "__main__":
    main()
