#!/usr/bin/env bash
# test_cli.sh GLMOE REPO — checks the CLI's behaviour on good and bad input.
# Every failure must be exactly one line on stderr and a non-zero exit; --help exits 0.
set -u
glmoe=$1
repo=$2
golden=$repo/tests/golden/glm45_like
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

fail() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
ok() { passed=$((passed + 1)); }

# Every run is under `timeout $limit` (seconds; e.g. `limit=10 expect_error ...`), so that a
# command that hangs (a FIFO waited on) fails its test instead of hanging the suite. stdout goes to
# $tmp/out, or to $stdout_to when set (`stdout_to=/dev/full expect_error ...`).
limit=600

# expect_error NAME EXIT_CODE PATTERN -- ARGS...: runs glmoe, wants that exit code and exactly one
# error line ("glmoe <command>: ..." or "glmoe: ...") matching PATTERN (grep -E). Other stderr lines may only be
# glmoe's own status lines ("glmoe: loaded ...", "glmoe: warning: ...").
expect_error() {
    local name=$1 want=$2 pattern=$3
    shift 4
    timeout "$limit" "$glmoe" "$@" >"${stdout_to:-$tmp/out}" 2>"$tmp/err"
    local rc=$?
    local lines
    lines=$(grep -E '^glmoe' "$tmp/err" | grep -Evc '^glmoe: (loaded |warning: |info: |prompt |wrote |chat with |[0-9]+ tokens in windows)')
    if grep -Evq '^glmoe( [a-z]+)?: ' "$tmp/err"; then fail "$name: stray stderr output: $(cat "$tmp/err")"; return; fi
    if [ "$rc" -ne "$want" ]; then fail "$name: exit $rc, want $want; stderr: $(cat "$tmp/err")"; return; fi
    if [ "$lines" -ne 1 ]; then fail "$name: $lines error lines, want 1: $(cat "$tmp/err")"; return; fi
    if ! grep -Eq -- "$pattern" "$tmp/err"; then fail "$name: stderr \"$(cat "$tmp/err")\" does not match /$pattern/"; return; fi
    ok
}

expect_ok() {
    local name=$1
    shift 2
    timeout "$limit" "$glmoe" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne 0 ]; then fail "$name: exit $rc: $(cat "$tmp/err")"; return; fi
    ok
}

# --- usage -----------------------------------------------------------------------------------
"$glmoe" >/dev/null 2>&1; [ $? -eq 2 ] && ok || fail "no arguments should exit 2"
expect_error "unknown command" 2 'unknown command "frobnicate"' -- frobnicate
for cmd in generate logits info; do
    expect_ok "$cmd --help" -- "$cmd" --help
    grep -q "usage: glmoe $cmd" "$tmp/out" && ok || fail "$cmd --help prints no usage"
done
expect_error "unknown option" 2 "unknown option --frob" -- info -m "$golden" --frob
expect_error "missing value" 2 "needs a value" -- generate -m
expect_error "bad ids" 2 "--ids" -- generate -m "$golden" --ids 1,x,3
expect_error "negative id" 2 "--ids" -- generate -m "$golden" --ids 1,-3
expect_error "trailing comma" 2 "--ids" -- generate -m "$golden" --ids 1,2,
expect_error "bad number" 2 "-n expects" -- generate -m "$golden" --ids 1 -n 12abc
expect_error "bad device" 2 "--device" -- info -m "$golden" --device tpu
expect_error "prompt without tokenizer" 1 "no tokenizer.json" -- generate -m "$golden" -p "hello"
# --device cuda where there is no GPU says so (not "CUDA driver version is insufficient")
if ! nvidia-smi -L >/dev/null 2>&1; then
    expect_error "--device cuda, no GPU" 1 "^glmoe info: --device cuda: (no CUDA GPU: .+|this build of glmoe has no CUDA backend)$" \
        -- info -m "$golden" --device cuda
    grep -q "insufficient" "$tmp/err" && fail "--device cuda: $(cat "$tmp/err")" || ok
fi

# --- good runs -------------------------------------------------------------------------------
expect_ok "info" -- info -m "$golden"
grep -q "Glm4MoeForCausalLM" "$tmp/out" && grep -q "BF16" "$tmp/out" && ok || fail "info output incomplete"
expect_ok "info mtp" -- info -m "$repo/tests/golden/mtp"
grep -Eq "MTP layer +loaded" "$tmp/out" && ok || fail "info does not report the MTP layer: $(cat "$tmp/out")"
expect_ok "info --no-mtp" -- info -m "$repo/tests/golden/mtp" --no-mtp
grep -Eq "skipped +[1-9][0-9]* tensors" "$tmp/out" && ! grep -q "MTP layer  *loaded" "$tmp/out" && ok \
    || fail "info --no-mtp does not report the skipped MTP tensors: $(cat "$tmp/out")"

prompt=$(python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["greedy_prompt"])))' "$golden/reference.json" 2>/dev/null)
expect_ids=$(python3 -c 'import json,sys; print(" ".join(map(str, json.load(open(sys.argv[1]))["greedy_new_ids"])))' "$golden/reference.json" 2>/dev/null)
if [ -n "$prompt" ]; then
    expect_ok "generate greedy" -- generate -m "$golden" --ids "$prompt" -n 24 --print-ids
    [ "$(cat "$tmp/out")" = "$expect_ids" ] && ok || fail "greedy ids \"$(cat "$tmp/out")\" != transformers' \"$expect_ids\""
    grep -q "tok/s" "$tmp/err" && ok || fail "generate prints no speed"
    # Sampling is reproducible with a seed and differs across seeds.
    "$glmoe" generate -m "$golden" --ids "$prompt" -n 16 --temp 1.0 --top-p 0.95 --seed 7 --print-ids >"$tmp/s1" 2>/dev/null
    "$glmoe" generate -m "$golden" --ids "$prompt" -n 16 --temp 1.0 --top-p 0.95 --seed 7 --print-ids >"$tmp/s2" 2>/dev/null
    "$glmoe" generate -m "$golden" --ids "$prompt" -n 16 --temp 1.0 --top-p 0.95 --seed 8 --print-ids >"$tmp/s3" 2>/dev/null
    cmp -s "$tmp/s1" "$tmp/s2" && ok || fail "same seed, different output"
    cmp -s "$tmp/s1" "$tmp/s3" && fail "different seeds, same output" || ok
fi
expect_ok "logits" -- logits -m "$golden" --ids 1,2,3 -o "$tmp/logits.f32"
size=$(stat -c %s "$tmp/logits.f32")
[ "$size" -eq $((3 * 397 * 4)) ] && ok || fail "logits file has $size bytes, want $((3 * 397 * 4))"

# --- quantized weights ------------------------------------------------------------------------
# glmoe quantize writes an MLX-format copy; generating from it equals quantizing while loading.
expect_ok "quantize" -- quantize -m "$golden" -o "$tmp/q4" --bits 4 --group 64
[ -f "$tmp/q4/model.safetensors" ] && grep -q '"quantization"' "$tmp/q4/config.json" && ok || fail "quantize wrote no checkpoint"
expect_error "quantize never overwrites" 1 "exists already" -- quantize -m "$golden" -o "$tmp/q4"
expect_error "quantize bad bits" 2 "--bits expects" -- quantize -m "$golden" -o "$tmp/q7" --bits 7
expect_error "quantize bad group" 2 "--group expects" -- quantize -m "$golden" -o "$tmp/q7" --group 48
expect_error "quantize no output" 2 "needs -m IN and -o OUT" -- quantize -m "$golden"
expect_error "bad --quantize" 2 "--quantize expects q4, q8" -- info -m "$golden" --quantize q9
expect_error "bad --quantize group" 2 "--quantize expects" -- info -m "$golden" --quantize q4g48
expect_ok "info quantized" -- info -m "$tmp/q4"
grep -q "q4 g64 (BF16 scales)" "$tmp/out" && ok || fail "info shows no q4 g64 weights: $(cat "$tmp/out")"
if [ -n "$prompt" ]; then
    expect_ok "generate quantized file" -- generate -m "$tmp/q4" --device cpu --ids "$prompt" -n 16 --print-ids
    cp "$tmp/out" "$tmp/q4_ids"
    expect_ok "generate --quantize q4" -- generate -m "$golden" --device cpu --quantize q4 --ids "$prompt" -n 16 --print-ids
    cmp -s "$tmp/out" "$tmp/q4_ids" && ok || fail "--quantize q4 ids \"$(cat "$tmp/out")\" != the written q4 file's \"$(cat "$tmp/q4_ids")\""
fi

# --- bad models ------------------------------------------------------------------------------
expect_error "missing dir" 1 "config.json" -- info -m "$tmp/nonexistent"
mkdir -p "$tmp/empty" && echo '{' >"$tmp/empty/config.json"
expect_error "broken config" 1 "config.json: invalid JSON" -- info -m "$tmp/empty"

copy() { rm -rf "$tmp/m"; cp -r "$golden" "$tmp/m"; chmod -R u+w "$tmp/m"; }

copy; sed -i 's/"Glm4MoeForCausalLM"/"LlamaForCausalLM"/' "$tmp/m/config.json"
expect_error "unsupported architecture" 1 "architectures.*LlamaForCausalLM" -- info -m "$tmp/m"

copy; sed -i 's/"n_group": 4/"n_group": 3/' "$tmp/m/config.json"
expect_error "inconsistent config" 1 "n_group" -- info -m "$tmp/m"

copy; sed -i 's/"intermediate_size": 80/"intermediate_size": 96/' "$tmp/m/config.json"
expect_error "wrong shape" 1 'tensor "model.layers.0.mlp.(gate|up|down)_proj.weight" has shape' -- info -m "$tmp/m"

copy; sed -i '/"model.layers.1.self_attn.k_proj.weight"/d' "$tmp/m/model.safetensors.index.json"
expect_error "missing tensor" 1 'model.layers.1.self_attn.k_proj.weight.*missing' -- info -m "$tmp/m"

copy; rm "$tmp/m/model-00002-of-00005.safetensors"
expect_error "missing shard" 1 "model-00002-of-00005.safetensors" -- info -m "$tmp/m"

copy; truncate -s -100 "$tmp/m/model-00003-of-00005.safetensors"
expect_error "truncated shard" 1 "model-00003-of-00005.safetensors" -- info -m "$tmp/m"

copy; printf '\xff\xff\xff\xff\xff\xff\xff\x7f' | dd of="$tmp/m/model-00001-of-00005.safetensors" conv=notrunc status=none
expect_error "header too large" 1 "model-00001-of-00005.safetensors.*header" -- info -m "$tmp/m"

copy; printf 'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n' >"$tmp/m/model-00004-of-00005.safetensors"
expect_error "git lfs pointer" 1 "model-00004-of-00005.safetensors.*(LFS|lfs)" -- info -m "$tmp/m"

copy; sed -i 's/"model-00005-of-00005.safetensors"/"..\/..\/etc\/passwd"/' "$tmp/m/model.safetensors.index.json"
expect_error "path traversal" 1 "passwd" -- info -m "$tmp/m"

# --- files that would block: every input is opened without waiting and must be a regular file;
# an output FIFO with no reader is refused instead of waited on (each run under a 20 s timeout) ----
demo=$repo/models/glmoe-demo
rm -rf "$tmp/fm" && mkdir "$tmp/fm" && cp "$demo"/*.json "$demo"/*.safetensors "$tmp/fm/"
mkfifo "$tmp/fm/chat_template.jinja" "$tmp/fifo_in" "$tmp/fifo_out"
limit=20 expect_error "fifo chat_template.jinja, generate --chat" 1 "chat_template.jinja: not a regular file \(a FIFO\)" \
    -- generate -m "$tmp/fm" -p hi --chat -n 2
printf 'hi\n/quit\n' | timeout 20 "$glmoe" chat -m "$tmp/fm" -n 2 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 1 ] && grep -q "^glmoe chat: .*chat_template.jinja: not a regular file (a FIFO)$" "$tmp/err" && ok \
    || fail "fifo chat_template.jinja, chat: exit $rc: $(cat "$tmp/err")"
limit=20 expect_error "fifo --text-file" 1 "fifo_in: not a regular file \(a FIFO\)" -- tokenize -t "$demo" --text-file "$tmp/fifo_in"
limit=20 expect_error "fifo -f" 1 "fifo_in: not a regular file \(a FIFO\)" -- perplexity -m "$demo" -f "$tmp/fifo_in"
limit=20 expect_error "directory --text-file" 1 "not a regular file \(a directory\)" -- tokenize -t "$demo" --text-file "$tmp"
limit=20 expect_error "fifo logits -o" 1 "fifo_out: a FIFO with no reader" -- logits -m "$golden" --ids 1,2 -o "$tmp/fifo_out"
limit=20 expect_error "fifo bench --json" 1 "fifo_out: a FIFO with no reader" -- bench -m "$golden" --device cpu --lengths 1 --contexts 8 --steps 1 --reps 1 --no-ops --json "$tmp/fifo_out"
limit=20 expect_error "fifo bench --svg" 1 "fifo_out: a FIFO with no reader" -- bench -m "$golden" --device cpu --lengths 1 --contexts 8 --steps 1 --reps 1 --no-ops --svg "$tmp/fifo_out"
limit=20 expect_ok "logits to /dev/null" -- logits -m "$golden" --ids 1,2,3 -o /dev/null
limit=20 expect_ok "logits to /dev/stdout" -- logits -m "$golden" --ids 1,2,3 -o /dev/stdout
[ "$(stat -c %s "$tmp/out")" -eq $((3 * 397 * 4)) ] && ok || fail "logits to /dev/stdout wrote $(stat -c %s "$tmp/out") bytes"
# a FIFO with a reader is a fine output (the reader holds it open before glmoe starts: no race)
exec 7<>"$tmp/fifo_out"
timeout 20 head -c $((2 * 397 * 4)) <&7 >"$tmp/from_fifo" &
exec 7<&-
limit=20 expect_ok "logits to a read FIFO" -- logits -m "$golden" --ids 1,2 -o "$tmp/fifo_out"
wait
[ "$(stat -c %s "$tmp/from_fifo")" -eq $((2 * 397 * 4)) ] && ok || fail "logits through a FIFO: $(stat -c %s "$tmp/from_fifo") bytes"

# --- output that cannot be written: a full disk is one line and exit 1; a closed pipe ends quietly
# with 141 (128 + SIGPIPE: SIGPIPE is ignored, the write's EPIPE seen) -- never 0 with output lost ---
# pipe_run MODE ARGS...: glmoe with stdout a pipe whose reader is gone before it starts ("closed") or
# goes after one byte ("one-byte"); prints the exit status, -N for a death by signal N. stdin is
# passed on, stderr goes to $tmp/err.
pipe_run_py='
import os, subprocess, sys
err, mode, args = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(err, "wb") as e:
    if mode == "closed":
        r, w = os.pipe()
        os.close(r)
        print(subprocess.run(args, stdout=w, stderr=e, timeout=600).returncode)
    else:
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=e)
        p.stdout.read(1)
        p.stdout.close()
        print(p.wait(timeout=600))
'
pipe_run() { python3 -c "$pipe_run_py" "$tmp/err" "$1" "$glmoe" "${@:2}"; }
quiet() { ! grep -Eq 'stdout|cannot write|Broken pipe|rror' "$tmp/err"; }
demo=$repo/models/glmoe-demo
printf 'The State of the Union\n' >"$tmp/short.txt"
outputs=(
    "generate -m $demo -p Hello -n 4"
    "generate -m $demo -p Hello -n 4 --print-ids"
    "tokenize -t $demo --text hello"
    "detokenize -t $demo --ids 464,3475"
    "info -m $demo"
    "perplexity -m $demo -f $tmp/short.txt"
    "generate --help"
)
for c in "${outputs[@]}"; do
    read -r -a argv <<<"$c"
    stdout_to=/dev/full limit=120 expect_error "$c >/dev/full" 1 "^glmoe ${argv[0]}: stdout: cannot write: No space left on device$" -- "${argv[@]}"
    rc=$(pipe_run closed "${argv[@]}")
    [ "$rc" = 141 ] && quiet && ok || fail "$c into a closed pipe: exit $rc (want 141, no message): $(cat "$tmp/err")"
done
printf 'Hello\n/quit\n' >"$tmp/chat_in"
stdout_to=/dev/full limit=120 expect_error "chat >/dev/full" 1 "^glmoe chat: stdout: cannot write: No space left" -- chat -m "$demo" -n 4 <"$tmp/chat_in"
rc=$(pipe_run closed chat -m "$demo" -n 4 <"$tmp/chat_in")
[ "$rc" = 141 ] && quiet && ok || fail "chat into a closed pipe: exit $rc: $(cat "$tmp/err")"
# `generate | head -c1`: generation stops at the first token that has no reader (no speed line, which
# is printed only at the end), and the status is 141, not a death by SIGPIPE
rc=$(pipe_run one-byte generate -m "$demo" -p "The State of the Union" -n 1000 --ignore-eos)
[ "$rc" = 141 ] && quiet && ! grep -q "generated" "$tmp/err" && ok \
    || fail "generate | head -c1: exit $rc (want 141, stopped early, quiet): $(cat "$tmp/err")"
limit=60 expect_error "logits -o /dev/full" 1 "/dev/full: cannot write: No space left" -- logits -m "$golden" --ids 1,2 -o /dev/full
bench_small=(bench -m "$golden" --device cpu --lengths 1 --contexts 8 --steps 1 --reps 1 --no-ops)
limit=60 expect_error "bench --json /dev/full" 1 "/dev/full: cannot write: No space left" -- "${bench_small[@]}" --json /dev/full
limit=60 expect_error "bench --svg /dev/full" 1 "/dev/full: cannot write: No space left" -- "${bench_small[@]}" --svg /dev/full
stdout_to=/dev/full limit=60 expect_error "bench >/dev/full" 1 "^glmoe bench: stdout: cannot write: No space left" -- "${bench_small[@]}"

# --- a model path of ~3000 bytes (30 nested directories): the path is shortened in the middle and
# every error line still ends with its cause (it used to be cut off at the 1 KB line) ---------------
long=$tmp/long
for i in $(seq 1 30); do long=$long/directory_$(printf '%088d' "$i"); done
mkdir -p "$long"
# expect_cause NAME CAUSE -- ARGS...: one error line, exit 1, that ends with CAUSE and shows the path
# shortened ("...").
expect_cause() {
    local name=$1 cause=$2
    shift 3
    expect_error "$name" 1 "\.\.\..*$cause\$" -- "$@"
}
expect_cause "long path, no config.json" "config.json: cannot open: No such file or directory" -- info -m "$long"
expect_cause "long path, no tokenizer.json" "no tokenizer.json in this directory" -- tokenize -t "$long" --text hi
expect_cause "long path, no text file" "x.txt: cannot open: No such file or directory" -- tokenize -t "$demo" --text-file "$long/x.txt"
expect_cause "long path, no output dir" "x.f32: cannot create: No such file or directory" -- logits -m "$golden" --ids 1 -o "$long/no/x.f32"
printf '{' >"$long/config.json"
expect_cause "long path, bad config.json" "config.json: invalid JSON at line 1 column 1: .*" -- info -m "$long"
cp "$golden/config.json" "$long/"
expect_cause "long path, no weights" "neither model.safetensors.index.json nor model.safetensors is here .*" -- info -m "$long"

# NaN weights (0xff bytes in the final norm's weight): every logit is NaN, and the error says so
# and where, instead of "sampling failed: invalid argument".
copy; python3 - "$tmp/m" model.norm.weight <<'PY'
import json, os, struct, sys
d, name = sys.argv[1], sys.argv[2]
shard = json.load(open(os.path.join(d, "model.safetensors.index.json")))["weight_map"][name]
with open(os.path.join(d, shard), "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    begin, end = json.loads(f.read(n))[name]["data_offsets"]
    f.seek(8 + n + begin)
    f.write(b"\xff" * (end - begin))
PY
expect_error "non-finite logits, greedy" 1 "position 3: cannot sample the next token: the logits are not finite: .*all 397 are NaN or -inf \(397 NaN, 0 -inf; the first, logits\[0\], is -?nan\)" \
    -- generate -m "$tmp/m" --ids 1,2,3 -n 4
expect_error "non-finite logits, sampling" 1 "position 3: cannot sample the next token: the logits are not finite" \
    -- generate -m "$tmp/m" --ids 1,2,3 -n 4 --temp 0.8 --top-p 0.9

# --- bad requests --------------------------------------------------------------------------
expect_error "token id out of range" 1 "token id 397 .*vocabulary" -- generate -m "$golden" --ids 1,397
expect_error "prompt longer than context" 1 "do not fit.*context" -- generate -m "$golden" --ids 1,2,3,4,5,6 --ctx 4
expect_error "ctx above model maximum" 1 "max_position_embeddings" -- generate -m "$golden" --ids 1 --ctx 100000000

# --- the default model (models/glmoe-demo): tokenizer, text generation, chat, perplexity ---------
demo=$repo/models/glmoe-demo
text=$'Fellow-Citizens of the Senate and House of Representatives:\r\n\tIn 1790, we had   13 States. <|user|>Hello'
# ids from HF tokenizers on the same tokenizer.json
want_ids="37 68 1080 12 34 3825 267 259 1551 283 1888 267 2431 25 201 198 197 40 77 220 2219 24 15 11 338 697 220 220 220 2345 443 13 220 4067 39 1330 78"
printf '%s' "$text" >"$tmp/text.txt"
expect_ok "tokenize file" -- tokenize -t "$demo" --text-file "$tmp/text.txt"
[ "$(cat "$tmp/out")" = "$want_ids" ] && ok || fail "tokenize: \"$(cat "$tmp/out")\" != HF's \"$want_ids\""
expect_ok "tokenize tokenizer.json" -- tokenize -t "$demo/tokenizer.json" --text "$text"
[ "$(cat "$tmp/out")" = "$want_ids" ] && ok || fail "tokenize --text differs from HF"
expect_ok "detokenize" -- detokenize -t "$demo" --ids "${want_ids// /,}"
cmp -s "$tmp/out" "$tmp/text.txt" && ok || fail "detokenize does not give the text back: $(cat "$tmp/out")"
timeout 60 "$glmoe" tokenize -t "$demo" --text-file - <"$tmp/text.txt" >"$tmp/out" 2>"$tmp/err"
[ "$(cat "$tmp/out")" = "$want_ids" ] && ok || fail "tokenize --text-file - (stdin): \"$(cat "$tmp/out")\" $(cat "$tmp/err")"
expect_ok "tokenize --pieces" -- tokenize -t "$demo" --text $'The State\n<|user|>' --pieces
printf '%6d -> %s\n' 51 "'T'" 3258 "'he'" 920 "' State'" 198 "'\\n'" 4067 "'<|user|>'" >"$tmp/want_pieces"
cmp -s "$tmp/out" "$tmp/want_pieces" && ok || fail "tokenize --pieces: $(cat "$tmp/out") / want $(cat "$tmp/want_pieces")"
python3 "$repo/tests/cli/pty_run.py" --stdout-only "$glmoe" detokenize -t "$demo" --ids 37,68,1080 >"$tmp/tty.out"
[ "$(cat "$tmp/tty.out")" = $'Fellow\r' ] && ok || fail "detokenize on a terminal does not end with a newline: $(od -c "$tmp/tty.out")"
printf 'caf\xc3' >"$tmp/bad.txt"
expect_error "invalid utf-8" 1 "UTF-8.*(offset|byte) 3" -- tokenize -t "$demo" --text-file "$tmp/bad.txt"
expect_error "tokenizer missing" 1 "nonexistent.*cannot open" -- tokenize -t "$tmp/nonexistent" --text hi

# Greedy continuation of train.py's prompt: the ids PyTorch gives (tools/train_demo/evaluate.py --greedy 40).
want_greedy="326 259 906 280 297 259 906 280 297 259 906 280 297 259 906 280 297 259 906 280 297 259 906 280 297 259 906 280 259 1160 13 351 1376 326 259 906 280 297 259 906"
expect_ok "demo greedy" -- generate -m "$demo" -p "The State of the Union" -n 40 --print-ids
[ "$(cat "$tmp/out")" = "$want_greedy" ] && ok || fail "demo greedy ids differ from PyTorch's: $(cat "$tmp/out")"
expect_ok "demo text" -- generate -m "$demo" -p "The State of the Union" -n 40
grep -q "is the first to be" "$tmp/out" && ok || fail "demo text: $(cat "$tmp/out")"
expect_ok "demo chat prompt" -- generate -m "$demo" -p "What is the state of the Union?" --chat --no-think -n 16 --temp 0.8 --seed 3

# The default thread count: one per 256 MiB of weights (the demo: one; BENCHMARKS.md "CPU threads")
expect_ok "default threads" -- info -m "$demo" --device cpu -v
grep -q "^glmoe: info: 1 CPU thread for [0-9]* MB of weights" "$tmp/err" && ok || fail "default threads: $(grep -i thread "$tmp/err")"
expect_ok "explicit threads" -- info -m "$demo" --device cpu -v --threads 2
grep -q "CPU thread" "$tmp/err" && fail "--threads 2 still takes the default: $(cat "$tmp/err")" || ok

# Load progress: on a terminal's stderr once the load takes a second (GLMOE_PROGRESS_AFTER=0 here:
# the demo loads faster), erased when done; never on a pipe
GLMOE_PROGRESS_AFTER=0 python3 "$repo/tests/cli/pty_run.py" --stderr-only "$glmoe" info -m "$demo" >"$tmp/tty.err"
grep -Eq "loading [0-9.]+ of [0-9.]+ GB, [0-9.]+ GB/s, [0-9]+ s left" "$tmp/tty.err" && ok \
    || fail "no load progress on a terminal: $(od -c "$tmp/tty.err" | head -5)"
GLMOE_PROGRESS_AFTER=0 timeout 60 "$glmoe" info -m "$demo" >/dev/null 2>"$tmp/err"
grep -q "loading" "$tmp/err" && fail "load progress on a pipe: $(cat "$tmp/err")" || ok
python3 "$repo/tests/cli/pty_run.py" --stderr-only "$glmoe" info -m "$demo" >"$tmp/tty.err"
grep -q "loading" "$tmp/tty.err" && fail "load progress for a load under a second: $(cat "$tmp/tty.err")" || ok

# --- options as llama.cpp and mlx-lm users type them ------------------------------------------
expect_error "unknown option suggests" 2 "unknown option --max-token; did you mean --max-tokens\?" -- generate -m "$demo" -p hi --max-token 3
expect_error "unknown option, nothing near" 2 "unknown option --frobnicate \(see glmoe help generate\)$" -- generate -m "$demo" -p hi --frobnicate 3
expect_error "unknown flag suggests" 2 "unknown option --ignore-eso; did you mean --ignore-eos\?" -- generate -m "$demo" -p hi --ignore-eso
expect_error "tokenize unknown option" 2 "unknown option --text-fil; did you mean --text-file\?" -- tokenize -t "$demo" --text-fil x
expect_error "known option without value" 2 "^glmoe generate: -p needs a value" -- generate -m "$demo" -p
for c in generate chat perplexity tokenize detokenize bench quantize info logits; do
    expect_ok "help $c" -- help "$c"
    grep -q "usage: glmoe $c" "$tmp/out" && ok || fail "glmoe help $c prints no usage: $(head -c 200 "$tmp/out")"
done
expect_error "help of an unknown command" 2 'unknown command "frob"' -- help frob
# aliases give what the options they stand for give
expect_ok "aliases: short names" -- generate -m "$demo" -p "The State of the Union" -n 12 --temp 0.9 --seed 11 --ctx 64 --print-ids
cp "$tmp/out" "$tmp/alias_a"
expect_ok "aliases: long names" -- generate -m "$demo" -p "The State of the Union" --max-tokens 12 --temperature 0.9 -s 11 -c 64 --print-ids
cmp -s "$tmp/out" "$tmp/alias_a" && ok || fail "--max-tokens/--temperature/-s/-c differ from -n/--temp/--seed/--ctx"
expect_ok "aliases: --ctx-size" -- generate -m "$demo" -p "The State of the Union" -n 12 --temp 0.9 --seed 11 --ctx-size 64 --print-ids
cmp -s "$tmp/out" "$tmp/alias_a" && ok || fail "--ctx-size differs from --ctx"
printf 'The State of the Union' >"$tmp/prompt.txt"
expect_ok "prompt from a file" -- generate -m "$demo" -f "$tmp/prompt.txt" -n 12 --temp 0.9 --seed 11 --print-ids
cmp -s "$tmp/out" "$tmp/alias_a" && ok || fail "-f FILE differs from -p"
timeout 60 "$glmoe" generate -m "$demo" --file - -n 12 --temp 0.9 --seed 11 --print-ids <"$tmp/prompt.txt" >"$tmp/out" 2>"$tmp/err"
cmp -s "$tmp/out" "$tmp/alias_a" && ok || fail "-f - (stdin) differs from -p: $(cat "$tmp/err")"
expect_error "two prompts" 2 "exactly one of --ids 1,2,3, -p TEXT or -f FILE" -- generate -m "$demo" -p hi -f "$tmp/prompt.txt"
expect_error "prompt file missing" 1 "nope.txt: cannot open" -- generate -m "$demo" -f "$tmp/nope.txt"
# Sampling without --seed: a random seed, printed, that repeats the run
timeout 60 "$glmoe" generate -m "$demo" -p "The State of the Union" -n 24 --temp 1.0 >"$tmp/r1" 2>"$tmp/e1"
timeout 60 "$glmoe" generate -m "$demo" -p "The State of the Union" -n 24 --temp 1.0 >"$tmp/r2" 2>"$tmp/e2"
seed1=$(sed -n 's/.*; seed: \([0-9]*\)$/\1/p' "$tmp/e1")
seed2=$(sed -n 's/.*; seed: \([0-9]*\)$/\1/p' "$tmp/e2")
[ -n "$seed1" ] && [ -n "$seed2" ] && [ "$seed1" != "$seed2" ] && ! cmp -s "$tmp/r1" "$tmp/r2" && ok \
    || fail "sampling without --seed: seeds \"$seed1\" \"$seed2\" (want two different ones printed, two different texts)"
timeout 60 "$glmoe" generate -m "$demo" -p "The State of the Union" -n 24 --temp 1.0 --seed "$seed1" >"$tmp/r3" 2>/dev/null
cmp -s "$tmp/r1" "$tmp/r3" && ok || fail "--seed $seed1 does not repeat the run that printed it"
grep -q "seed:" "$tmp/err" && fail "a greedy run prints a seed" || ok  # (the last expect_ok above: sampled with --seed) 
# --stop: the text ends right before the first stop string, also one cut across tokens and one
# that is held back while streaming; the stop line says why
expect_ok "no stop" -- generate -m "$demo" -p "The State of the Union" -n 40
full=$(cat "$tmp/out")
for stop in "first to" "e fi" "Union. The C" "zzz"; do
    expect_ok "stop \"$stop\"" -- generate -m "$demo" -p "The State of the Union" -n 40 --stop "$stop" --stop "never seen"
    want=${full%%"$stop"*}
    [ "$(cat "$tmp/out")" = "$want" ] && ok || fail "--stop \"$stop\": \"$(cat "$tmp/out")\", want \"$want\""
    if [ "$want" != "$full" ]; then grep -q "stop: stop string" "$tmp/err" && ok || fail "--stop: $(cat "$tmp/err")"; fi
done
expect_error "stop with ids" 2 "--stop works on the text" -- generate -m "$demo" -p hi --stop x --print-ids
expect_error "empty stop" 2 "--stop: an empty stop string" -- generate -m "$demo" -p hi --stop ""
# --echo prints the prompt first; nothing is added to the text on a pipe, a newline on a terminal
expect_ok "echo" -- generate -m "$demo" -p "The State of the Union" -n 40 --echo
[ "$(cat "$tmp/out")" = "The State of the Union$full" ] && ok || fail "--echo: $(cat "$tmp/out")"
[ "$(tail -c 1 "$tmp/out" | od -An -c | tr -d ' ')" != '\n' ] && ok || fail "generate on a pipe adds a newline"
python3 "$repo/tests/cli/pty_run.py" --stdout-only "$glmoe" generate -m "$demo" -p "The State of the Union" -n 40 >"$tmp/tty.out" 2>"$tmp/tty.err"
python3 -c 'import sys; t=open(sys.argv[1],"rb").read(); sys.exit(not (t.endswith(b"\r\n") and t.count(b"\n") == 1))' "$tmp/tty.out" \
    && ok || fail "generate on a terminal does not end its text with one newline: $(od -c "$tmp/tty.out" | tail -3)"
# The chat REPL keeps the KV cache across turns: with --verbose each turn reports how many of its
# prompt tokens were reused from the cache. Turn k must reuse at least the whole prompt of turn k-1
# (the conversation so far renders the same up to there), evaluate the rest, and a /reset starts
# from an empty cache. /think between turns changes how earlier turns render, so it comes last.
printf 'Hello there\nTell me about taxes\nAnd the army?\n/reset\nHello again\n/think\nAnd now?\n/quit\n' \
    | timeout 120 "$glmoe" chat -m "$demo" -n 12 --seed 5 --verbose >"$tmp/chat.out" 2>"$tmp/chat.err"
rc=$?
sed -n 's/^glmoe: turn \([0-9]*\): \([0-9]*\) prompt tokens, \([0-9]*\) reused from the KV cache, \([0-9]*\) evaluated$/\1 \2 \3 \4/p' \
    "$tmp/chat.err" >"$tmp/turns"
[ "$rc" -eq 0 ] && [ "$(grep -c 'tok/s' "$tmp/chat.err")" -eq 5 ] && awk '
    { turn[NR] = $1; prompt[NR] = $2; reused[NR] = $3; evaluated[NR] = $4
      if ($3 + $4 != $2 || $4 < 1) bad = 1 }
    END {
        if (NR != 5 || turn[1] != 1 || turn[2] != 2 || turn[3] != 3 || turn[4] != 1 || turn[5] != 2) exit 1
        if (reused[1] != 0 || reused[4] != 0) exit 1           # an empty cache at the start and after /reset
        if (reused[2] < prompt[1] || reused[3] < prompt[2]) exit 1  # the previous turn stayed in the cache
        exit bad
    }' "$tmp/turns" && ok || fail "chat REPL does not reuse the KV cache across turns (turn prompt reused evaluated):
$(cat "$tmp/turns") / $(cat "$tmp/chat.err")"

# A line that cannot be a message (ill-formed UTF-8, a NUL byte) is refused with its line and byte,
# and the session goes on: the good line after them is answered.
printf 'caf\xc3\nnul\0byte\nHello there\n/quit\n' | timeout 120 "$glmoe" chat -m "$demo" -n 4 --seed 1 >"$tmp/chat.out" 2>"$tmp/chat.err"
rc=$?
[ "$rc" -eq 0 ] && grep -q "^glmoe chat: input line 1: .*UTF-8.*byte 3.*; not sent$" "$tmp/chat.err" \
    && grep -q "^glmoe chat: input line 2: a NUL byte at byte 3 .*; not sent$" "$tmp/chat.err" \
    && [ "$(grep -c 'tok/s' "$tmp/chat.err")" -eq 1 ] && grep -Eq '^> > > .*[a-z]' "$tmp/chat.out" && ok \
    || fail "chat with a bad line: exit $rc: $(cat "$tmp/chat.err") / $(cat "$tmp/chat.out")"

# Perplexity of the first 20000 bytes of the held-out split, against PyTorch's 26.6520
# (python3 tools/train_demo/evaluate.py -m models/glmoe-demo -f SLICE --ctx 512). Bound: 0.5%.
head -c 20000 "$demo/heldout.txt" >"$tmp/slice.txt"
expect_ok "perplexity" -- perplexity -m "$demo" -f "$tmp/slice.txt" --ctx 512
ppl=$(tail -n 1 "$tmp/out" | sed -n 's/^perplexity: \([0-9.]*\) +\/- [0-9.]*$/\1/p')
awk -v p="$ppl" 'BEGIN { d = (p - 26.6520) / 26.6520; exit !(p != "" && d < 0.005 && d > -0.005) }' && ok \
    || fail "perplexity \"$ppl\" is not within 0.5% of PyTorch's 26.6520: $(tail -n 1 "$tmp/out")"
# one running value per window, the last equal to the final value; the standard error as
# llama-perplexity computes it (the per-token NLLs' spread over sqrt(n - 1), times the perplexity):
# recomputed here from the logits of the same windows
python3 - "$tmp/out" <<'PY' && ok || fail "perplexity: running values and standard error: $(cat "$tmp/out")"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
running = [l for l in lines if re.match(r"^\[\d+/\d+\] [0-9.]+$", l)]
n = int(running[0].split("/")[1].split("]")[0])
final, err = map(float, re.match(r"^perplexity: ([0-9.]+) \+/- ([0-9.]+)$", lines[-1]).groups())
assert len(running) == n and running[-1].endswith(f" {final:.4f}"), (running, final)
mean, se = map(float, re.search(r"mean ([0-9.]+) \+/- ([0-9.]+)", lines[-2]).groups())
assert abs(err - final * se) < 1e-3 and 0 < se < 0.1, (err, final, se)
PY
# progress on a terminal's stderr only
grep -q "window [0-9]*/" "$tmp/err" && fail "perplexity shows progress on a pipe" || ok
python3 "$repo/tests/cli/pty_run.py" --stderr-only "$glmoe" perplexity -m "$demo" -f "$tmp/slice.txt" >"$tmp/tty.err" 2>/dev/null
grep -q "window 9/9, [0-9]* tok/s" "$tmp/tty.err" && ok || fail "perplexity shows no progress on a terminal: $(head -c 300 "$tmp/tty.err")"
# the standard error itself: three windows whose per-token NLLs are known from logits
head -c 3000 "$demo/heldout.txt" >"$tmp/slice3.txt"
expect_ok "perplexity small" -- perplexity -m "$demo" -f "$tmp/slice3.txt" --ctx 64
ids3=$(timeout 60 "$glmoe" tokenize -t "$demo" --text-file "$tmp/slice3.txt" --no-special)
python3 - "$tmp/out" "$glmoe" "$demo" "$ids3" "$tmp/l3.f32" <<'PY' && ok || fail "perplexity's standard error differs from the logits' own: $(tail -n 2 "$tmp/out")"
import math, re, struct, subprocess, sys
out, glmoe, demo, ids, path = sys.argv[1:6]
ids = [int(x) for x in ids.split()]
xs = []
for s in range(0, len(ids) - 1, 64):
    w = ids[s:s + 64]
    subprocess.run([glmoe, "logits", "-m", demo, "--ids", ",".join(map(str, w)), "-o", path], check=True, capture_output=True)
    data = open(path, "rb").read()
    V = len(data) // 4 // len(w)
    rows = struct.unpack(f"<{len(w) * V}f", data)
    for t in range(len(w) - 1):
        r = rows[t * V:(t + 1) * V]
        m = max(r)
        xs.append(m + math.log(sum(math.exp(v - m) for v in r)) - r[w[t + 1]])
n = len(xs)
mean = sum(xs) / n
se = math.sqrt((sum(x * x for x in xs) / n - mean * mean) / (n - 1))
final, err = map(float, re.match(r"^perplexity: ([0-9.]+) \+/- ([0-9.]+)$", open(out).read().splitlines()[-1]).groups())
assert abs(final - math.exp(mean)) < 1e-3 * final and abs(err - math.exp(mean) * se) < 2e-3 * err + 1e-4, (final, err, math.exp(mean), math.exp(mean) * se)
PY

# glmoe bench on the CPU: the JSON holds every asked length, context and op, with positive times;
# the SVG is well-formed XML.
expect_ok "bench" -- bench -m "$golden" --device cpu --lengths 1,3,16 --contexts 8,32 --steps 2 --reps 1 \
    --json "$tmp/bench.json" --svg "$tmp/bench.svg"
python3 - "$tmp/bench.json" "$tmp/bench.svg" <<'PY' && ok || fail "bench JSON/SVG: see above"
import json, sys, xml.dom.minidom
d = json.load(open(sys.argv[1]))
assert d["engine"] == "glmoe" and d["probe"]["copy_gb_s"] > 0 and d["probe"]["gemm_tflop_s"] > 0, d.get("probe")
assert [p["tokens"] for p in d["prefill"]] == [1, 3, 16] and all(p["ms"] > 0 for p in d["prefill"]), d["prefill"]
assert [p["context"] for p in d["decode"]] == [8, 32] and all(p["ms_per_token"] > 0 and p["bw_pct"] > 0 for p in d["decode"])
ops = {(o["op"], o["tokens"], o["context"]) for o in d["ops"] if o["ms"] > 0}
for op in ["add_rmsnorm", "matmul_qkv", "matmul_o", "rope", "swiglu", "moe_route", "moe_experts", "dense_mlp"]:
    assert (op, 1, 0) in ops and (op, 512, 0) in ops, op
assert ("attn_causal", 512, 512) in ops and ("attn_masked", 512, 512) in ops and ("attn_decode", 1, 32) in ops, ops
xml.dom.minidom.parse(sys.argv[2])
PY
# On the CPU the table has no GPU-only columns (the host's share of a step, graph replays); each
# prefill length has its fastest repetition too (a cliff must hold on it, not only on the median).
grep -q "^decode   context  ms/token   GB/s  %copy-BW$" "$tmp/out" && ! grep -Eq "graph replays|host us" "$tmp/out" && ok \
    || fail "bench on the CPU prints GPU-only columns: $(grep -A1 '^decode' "$tmp/out")"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(not all(0 < p["fastest_ms"] <= p["ms"] for p in d["prefill"]))' "$tmp/bench.json" \
    && ok || fail "bench JSON: no fastest_ms <= ms per prefill length"
# The default sweep and contexts are cut to what a model holds (odd_dims: 64 positions).
expect_ok "bench defaults cut" -- bench -m "$repo/tests/golden/odd_dims" --device cpu --steps 1 --reps 1 --json "$tmp/b2.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); t=[p["tokens"] for p in d["prefill"]]; c=[p["context"] for p in d["decode"]]; sys.exit(not (t[-1] == 64 and max(t) == 64 and c == [32]))' "$tmp/b2.json" \
    && ok || fail "bench defaults on a 64-position model: $(head -c 300 "$tmp/b2.json")"
# More timed decode steps (the default 32) than the context has positions (8 + 8): the fixed ids
# each step feeds were read past their array (ASan: heap-buffer-overflow; release: a garbage id).
expect_ok "bench steps past the context" -- bench -m "$demo" --device cpu --lengths 8 --contexts 8 --no-ops --reps 1 \
    --json "$tmp/b3.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(not ([p["context"] for p in d["decode"]] == [8] and d["decode"][0]["ms_per_token"] > 0))' "$tmp/b3.json" \
    && ok || fail "bench with 32 steps at context 8: $(head -c 300 "$tmp/b3.json")"
expect_error "bench needs a model" 2 "either -m DIR or --config" -- bench
expect_error "bench unknown config" 1 'unknown configuration "glm-9"' -- bench --config glm-9 --device cpu
expect_error "bench context too long" 2 "exceeds the model's max_position_embeddings" -- bench -m "$golden" --device cpu --contexts 100000

# --- speculative decoding (--draft): the same ids as one token at a time, over 2000 tokens ------------
mtp=$repo/tests/golden/mtp
for mode in "" "--temp 0.9 --top-p 0.95 --seed 7"; do
    # shellcheck disable=SC2086
    expect_ok "draft 0 $mode" -- generate -m "$mtp" --ids 5,6,7 -n 2000 --ignore-eos --print-ids --draft 0 $mode
    cp "$tmp/out" "$tmp/plain.ids"
    for k in 1 2 4; do
        # shellcheck disable=SC2086
        expect_ok "draft $k $mode" -- generate -m "$mtp" --ids 5,6,7 -n 2000 --ignore-eos --print-ids --draft "$k" $mode
        cmp -s "$tmp/out" "$tmp/plain.ids" && ok || fail "--draft $k $mode: the ids differ from --draft 0"
        grep -q "drafts: [0-9]* of [0-9]* accepted" "$tmp/err" && ok || fail "--draft $k: no acceptance in the stats: $(cat "$tmp/err")"
    done
done
[ "$(wc -w < "$tmp/plain.ids")" -eq 2000 ] && ok || fail "2000 ids expected, got $(wc -w < "$tmp/plain.ids")"
expect_error "draft without an MTP layer" 1 "no multi-token-prediction layer" -- generate -m "$golden" --ids 1 --draft 2
expect_error "draft too many" 2 "--draft expects" -- generate -m "$mtp" --ids 1 --draft 9
expect_ok "bench drafts (a speculative step of 5 rows after prefills of 1)" -- bench -m "$mtp" --device cpu --lengths 1 --contexts 16 --no-ops --reps 1 --steps 2 --gen 40 --json "$tmp/b4.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); k=[p["k"] for p in d["drafts"]]; v=[p["tokens"] for p in d["verify"]]; b=[p["sequences"] for p in d["batch"]]; sys.exit(not (k == [-1, 0, 1, 2, 3, 4] and v == [1, 2, 3, 4, 5] and b == [1, 4, 16, 64] and all(p["tok_s"] > 0 for p in d["batch"])))' "$tmp/b4.json" \
    && ok || fail "bench drafts, verify and batch: $(head -c 300 "$tmp/b4.json")"

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
