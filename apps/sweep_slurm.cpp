#include "apps/sweep_slurm.hpp"

#include <regex>
#include <set>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace fs = std::filesystem;

namespace wdlab::app {

void SlurmOptions::validate() const {
  // Values land in #SBATCH lines and shell words: Slurm's own character sets, nothing else.
  if (!partition.empty() && !std::regex_match(partition, std::regex("[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*")))
    throw UsageError("--partition", fmt::format("'{}' is not a partition name (or a comma-separated list)", partition));
  if (!account.empty() && !std::regex_match(account, std::regex("[A-Za-z0-9_.-]+")))
    throw UsageError("--account", fmt::format("'{}' is not an account name", account));
  // sbatch --time: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or UNLIMITED/INFINITE.
  if (cpus_per_task < 1) throw UsageError("--threads", fmt::format("a Slurm task needs >= 1 CPU, got {}", cpus_per_task));
  if (!time.empty() &&
      !std::regex_match(time, std::regex(R"((\d+(:\d{1,2}){0,2})|(\d+-\d{1,2}(:\d{1,2}){0,2})|UNLIMITED|INFINITE)",
                                         std::regex::icase)))
    throw UsageError("--time", fmt::format("'{}' is not a Slurm time limit (minutes, HH:MM:SS, D-HH:MM, ...)", time));
}

SlurmResources slurm_resources(const std::vector<GridPoint>& points, const SlurmOptions& o, const std::string& where) {
  std::set<std::string> backends;
  for (const auto& p : points) backends.insert(p.config.value("backend", std::string("reference")));
  if (backends.size() > 1)
    throw UsageError(where, "the grid mixes backends (reference and cuda); one Slurm array asks for one set of "
                            "resources: split it into one grid per backend");
  SlurmResources r;
  r.device = !backends.empty() && *backends.begin() == "cuda" ? SlurmDevice::gpu : SlurmDevice::cpu;
  r.cpus_per_task = o.cpus_per_task;  // each run's --threads (sweep_slurm.hpp)
  return r;
}

std::vector<std::string> slurm_task_options(const SlurmResources& r, const SlurmOptions& o) {
  std::vector<std::string> v{fmt::format("--cpus-per-task={}", r.cpus_per_task)};
  switch (r.device) {
    case SlurmDevice::cpu: break;
    case SlurmDevice::gpu: v.push_back("--gres=gpu:1"); break;
  }
  if (!o.partition.empty()) v.push_back("--partition=" + o.partition);
  if (!o.time.empty()) v.push_back("--time=" + o.time);
  if (!o.account.empty()) v.push_back("--account=" + o.account);
  return v;
}

fs::path slurm_submit_path(const fs::path& array_script) {
  return array_script.parent_path() / (array_script.stem().string() + "-submit.sh");
}

namespace {

/// One shell word: 'text' with each ' written as '\''.
std::string sh_quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string joined(const std::vector<std::string>& v, const std::string& before, const std::string& sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + before + x;
  return s;
}

}  // namespace

SlurmScripts slurm_scripts(const Grid& g, const fs::path& out, const std::vector<GridPoint>& points,
                           const SlurmOptions& o, const fs::path& array_script, const fs::path& wdlab) {
  o.validate();
  const std::string abs_out = fs::absolute(out).lexically_normal().string();
  // #SBATCH --output takes no quoting and expands %-patterns.
  if (abs_out.find_first_of(" \t\n'\"\\%") != std::string::npos)
    throw UsageError("--out", fmt::format("'{}': a Slurm sweep needs an output path without blanks, quotes, "
                                          "backslashes or %", abs_out));
  const SlurmResources res = slurm_resources(points, o, g.file.string());
  const auto task_opts = slurm_task_options(res, o);
  std::vector<std::string> ids;
  for (const auto& p : points) ids.push_back(p.id);
  const std::string what = fmt::format("{} CPU{} per task (the run's --threads), {}", res.cpus_per_task,
                                       res.cpus_per_task == 1 ? "" : "s",
                                       res.device == SlurmDevice::gpu ? "1 GPU (backend cuda)" : "no GPU (backend reference)");
  const std::string grid = fs::absolute(g.file).lexically_normal().string();
  const std::string script = fs::absolute(array_script).lexically_normal().string();
  const std::string submit = fs::absolute(slurm_submit_path(array_script)).lexically_normal().string();
  const std::string collect_cmd =
      fmt::format("wdlab sweep --grid {} --out {} --collect", sh_quote(grid), sh_quote(abs_out));

  SlurmScripts s;
  s.array = fmt::format(R"SH(#!/bin/bash
# Slurm job array for the wdlab sweep '{name}' ({n} points), written by `wdlab sweep --emit-slurm`.
# Each task trains one point: {what}.
# Submit what is left and collect afterwards:   {submit}
# Or by hand:  sbatch [--array=LIST] {script}
#   and, after the array ended:  {collect}
# A task skips its point when DONE (or logs/<id>.failed) exists and continues an interrupted run
# from its checkpoint (train --resume); a run stopped by a signal (scancel, time limit) stays
# resumable, one that failed (e.g. diverged) is recorded in logs/<id>.failed as `wdlab sweep` does.
#SBATCH --job-name=wdlab-{name}
#SBATCH --array=0-{last}
#SBATCH --output={out}/logs/slurm-%A_%a.log
{sbatch}
set -uo pipefail
IDS=({ids})
ID=${{IDS[$SLURM_ARRAY_TASK_ID]}}
WDLAB=${{WDLAB:-{exe}}}
OUT={qout}
RUN=$OUT/runs/$ID
echo "wdlab sweep {name}: task $SLURM_ARRAY_TASK_ID, point $ID (job ${{SLURM_JOB_ID:-?}}, partition ${{SLURM_JOB_PARTITION:-?}}, account ${{SLURM_JOB_ACCOUNT:-none}}, $(hostname))"
if [ -e "$RUN/DONE" ]; then echo "$ID: already done"; exit 0; fi
if [ -e "$OUT/logs/$ID.failed" ]; then
  echo "$ID: failed before (exit $(cat "$OUT/logs/$ID.failed")); skipped (wdlab sweep --emit-slurm --retry-failed clears it)"
  exit 0
fi
RESUME=()
if [ -e "$RUN/config.json" ]; then RESUME=(--resume); fi
# scancel and the time limit send SIGTERM to every process of the task: this shell waits for
# wdlab, which checkpoints and exits 143, then says so below.
trap ':' TERM INT
"$WDLAB" train --config "$OUT/configs/$ID.json" --out "$RUN" --threads "${{SLURM_CPUS_PER_TASK:-1}}" "${{RESUME[@]}}" >>"$OUT/logs/$ID.log" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then echo "$ID: done (log $OUT/logs/$ID.log)"; exit 0; fi
if [ "$rc" -gt 128 ]; then
  echo "$ID: stopped by signal $((rc - 128)); its checkpoint is kept, submit again to continue"
  exit "$rc"
fi
echo "$rc" >"$OUT/logs/$ID.failed.tmp" && mv "$OUT/logs/$ID.failed.tmp" "$OUT/logs/$ID.failed"
echo "$ID: failed (exit $rc), recorded in $OUT/logs/$ID.failed (log $OUT/logs/$ID.log)"
exit "$rc"
)SH",
                        fmt::arg("name", g.name), fmt::arg("n", points.size()), fmt::arg("last", points.size() - 1),
                        fmt::arg("what", what), fmt::arg("submit", submit), fmt::arg("script", script),
                        fmt::arg("collect", collect_cmd), fmt::arg("out", abs_out),
                        fmt::arg("sbatch", joined(task_opts, "#SBATCH ", "\n")), fmt::arg("ids", joined(ids, "", " ")),
                        fmt::arg("exe", sh_quote(wdlab.string())), fmt::arg("qout", sh_quote(abs_out)));

  s.submit = fmt::format(R"SH(#!/bin/bash
# Submit-and-collect helper of the wdlab sweep '{name}' ({n} points), written by `wdlab sweep --emit-slurm`.
#  1. sbatch --array=LIST {script}
#     LIST: the points not done yet (no DONE in runs/<id>, no logs/<id>.failed); none: no array job.
#  2. one job after the array ended (--dependency=afterany), with the same resources ({what}):
#       {collect}
#     It selects the best point by validation at the final epoch and retrains it on
#     train+validation into {out}/final-<id> (log {out}/logs/slurm-collect-<job>.log). While a point
#     is unfinished (a task cancelled or out of time) it trains nothing and exits 5: run this
#     helper again, it submits only what is left.
# Arguments go to both sbatch calls (e.g. --qos=high). $WDLAB overrides the wdlab binary.
set -euo pipefail
WDLAB=${{WDLAB:-{exe}}}
OUT={qout}
GRID={qgrid}
IDS=({ids})
todo=""
for i in "${{!IDS[@]}}"; do
  if [ ! -e "$OUT/runs/${{IDS[$i]}}/DONE" ] && [ ! -e "$OUT/logs/${{IDS[$i]}}.failed" ]; then todo+=${{todo:+,}}$i; fi
done
dep=()
if [ -n "$todo" ]; then
  array=$(sbatch --parsable --array="$todo" "$@" {qscript})
  array=${{array%%;*}}
  dep=(--dependency=afterany:"$array")
  echo "array job $array: tasks $todo"
else
  echo "every point is done (or failed): no array job"
fi
collect=$(sbatch --parsable "${{dep[@]}}" --job-name=wdlab-{name}-collect --output="$OUT/logs/slurm-collect-%j.log" \
  {opts} "$@" \
  --wrap="exec $(printf '%q ' "$WDLAB" sweep --grid "$GRID" --out "$OUT" --collect)")
collect=${{collect%%;*}}
echo "collect job $collect: log $OUT/logs/slurm-collect-$collect.log"
)SH",
                         fmt::arg("name", g.name), fmt::arg("n", points.size()), fmt::arg("script", script),
                         fmt::arg("qscript", sh_quote(script)), fmt::arg("what", what), fmt::arg("collect", collect_cmd),
                         fmt::arg("out", abs_out), fmt::arg("exe", sh_quote(wdlab.string())),
                         fmt::arg("qout", sh_quote(abs_out)), fmt::arg("ids", joined(ids, "", " ")),
                         fmt::arg("opts", joined(task_opts, "", " ")), fmt::arg("qgrid", sh_quote(grid)));
  return s;
}

}  // namespace wdlab::app
