#include "common/train/trainer.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "common/data/transforms.hpp"
#include "common/errors.hpp"
#include "common/io/atomic_file.hpp"
#include "common/train/batching.hpp"
#include "common/train/metrics_log.hpp"
#include "common/train/rotation.hpp"
#include "common/train/signals.hpp"
#include "common/fault.hpp"

namespace wdlab::train {

namespace fs = std::filesystem;

void TrainerConfig::validate() const {
  if (epochs < 1) throw UsageError("epochs", fmt::format("must be >= 1, got {}", epochs));
  if (batch_size < 2) throw UsageError("batch_size", fmt::format("must be >= 2, got {}", batch_size));
  if (eval_batch_size < 1)
    throw UsageError("eval_batch_size", fmt::format("must be >= 1, got {}", eval_batch_size));
  if (checkpoint_every < 1)
    throw UsageError("checkpoint.every", fmt::format("must be >= 1, got {}", checkpoint_every));
  if (keep_checkpoints < 1)
    throw UsageError("checkpoint.keep", fmt::format("must be >= 1, got {}", keep_checkpoints));
  if (!lr) throw InternalError("TrainerConfig.lr is not set");
  metrics.validate();
}

namespace {

using Clock = std::chrono::steady_clock;

class ProgressLine {
 public:
  explicit ProgressLine(Progress p) {
    mode_ = p == Progress::auto_detect ? (::isatty(STDERR_FILENO) ? Progress::terminal : Progress::lines) : p;
  }
  void update(int epoch, int epochs, std::int64_t step, std::int64_t steps, double loss, double acc) {
    if (mode_ == Progress::quiet) return;
    const auto now = Clock::now();
    if (mode_ == Progress::terminal) {
      if (now - last_ < std::chrono::milliseconds(200) && step != steps) return;
      fmt::print(stderr, "\repoch {}/{}  step {}/{}  loss {:.4f}  acc {:.3f}   ", epoch, epochs, step,
                 steps, loss, acc);
      std::fflush(stderr);
    } else {
      if (now - last_ < std::chrono::seconds(30) && step != steps) return;
      fmt::print(stderr, "epoch {}/{} step {}/{} loss {:.4f} acc {:.3f}\n", epoch, epochs, step, steps,
                 loss, acc);
    }
    last_ = now;
  }
  void end_epoch(const std::string& summary) {
    if (mode_ == Progress::quiet) return;
    if (mode_ == Progress::terminal) fmt::print(stderr, "\r\033[K");
    fmt::print(stderr, "{}\n", summary);
  }

 private:
  Progress mode_;
  Clock::time_point last_{};
};

void save_checkpoint(Backend& backend, const fs::path& run_dir, const Position& at,
                     const nlohmann::json& meta, int keep) {
  write_checkpoint(backend.state(), run_dir, at, meta, keep);
}

/// An event row of metrics.jsonl (metrics_log.hpp): what happened at step `step` of `epoch`.
nlohmann::ordered_json event_row(const char* kind, int epoch, std::int64_t step) {
  nlohmann::ordered_json r;
  r["event"] = kind;
  r["epoch"] = epoch;
  r["step"] = step;
  return r;
}

}  // namespace

EvalStats evaluate(Backend& backend, const data::Dataset& d, int batch_size) {
  EvalStats total;
  HostBatcher buf;
  std::vector<std::uint32_t> ids;
  for (std::size_t start = 0; start < d.size(); start += std::size_t(batch_size)) {
    const std::size_t n = std::min<std::size_t>(std::size_t(batch_size), d.size() - start);
    ids.resize(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = std::uint32_t(start + i);
    total += backend.evaluate(buf.fill(d, ids, AugmentSpec{}));
  }
  return total;
}

EvalStats evaluate(Backend& backend, const data::Dataset& d, DataSplit split, int batch_size) {
  if (backend.data_path() != DataPath::resident) return evaluate(backend, d, batch_size);
  // The same batches as the host path, the last one partial, named by id.
  EvalStats total;
  std::vector<std::int64_t> ids;
  for (std::size_t start = 0; start < d.size(); start += std::size_t(batch_size)) {
    const std::size_t n = std::min<std::size_t>(std::size_t(batch_size), d.size() - start);
    ids.resize(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = std::int64_t(start + i);
    total += backend.evaluate_ids(IdBatch{split, ids, AugmentSpec{}});
  }
  return total;
}

namespace {

/// The held-out columns of an epoch row (the epoch-0 row too): validation where a split is held
/// out, then test, both in evaluation mode.
void evaluate_held_out(Backend& backend, const Datasets& data, const TrainerConfig& cfg, RunSummary& summary,
                       nlohmann::ordered_json& row) {
  if (data.val.size() > 0) {
    summary.val = evaluate(backend, data.val, DataSplit::val, cfg.eval_batch_size);
    row["val_loss"] = summary.val.loss();
    row["val_acc"] = summary.val.accuracy();
  }
  summary.test = evaluate(backend, data.test, DataSplit::test, cfg.eval_batch_size);
  row["test_loss"] = summary.test.loss();
  row["test_acc"] = summary.test.accuracy();
}

}  // namespace

RunSummary train(Backend& backend, const Datasets& data, const TrainerConfig& cfg,
                 const fs::path& run_dir, const std::optional<ResumePoint>& from,
                 const nlohmann::json& checkpoint_metadata) {
  cfg.validate();
  const std::size_t n_train = data.train.size();
  const std::int64_t per_epoch = std::int64_t(n_train / std::size_t(cfg.batch_size));
  if (per_epoch < 1)
    throw UsageError("batch_size", fmt::format("{} exceeds the training set ({} examples)", cfg.batch_size, n_train));
  io::remove_stale_temporaries(run_dir);
  if (fs::exists(run_dir / "checkpoints")) io::remove_stale_temporaries(run_dir / "checkpoints");

  Position start;
  if (from) {
    start = from->at;
    if (start.batch >= per_epoch || start.epoch > cfg.epochs || (start.epoch == cfg.epochs && start.batch > 0))
      throw DataError(from->path.string(), fmt::format("position (epoch {}, batch {}) is beyond this run's {} epochs of {} batches",
                                                       start.epoch, start.batch, cfg.epochs, per_epoch));
    backend.load_state(from->file);
  }
  backend.set_nonfinite_policy(cfg.on_nonfinite);
  // Group rotation: every step records ⟨θ_t,θ_{t+1}⟩, the norms and ‖g_t‖ per weight tensor
  // (one copy of the weights and a few reductions per step, rotation.hpp); the epoch's mean.
  backend.record_weight_steps(records_weight_steps(cfg.metrics.groups) ? WeightSteps::record : WeightSteps::off);
  RotationMeter epoch_steps;  // a resumed epoch averages the steps since the resume
  // Resident data: every set handed over once; steps and evaluations then name example ids.
  const DataPath path = backend.data_path();
  if (path == DataPath::resident) {
    backend.set_resident_data(DataSplit::train, view_of(data.train));
    if (data.val.size() > 0) backend.set_resident_data(DataSplit::val, view_of(data.val));
    backend.set_resident_data(DataSplit::test, view_of(data.test));
  }
  const SignalGuard signals;
  // Fault injection for tests: WDLAB_FAULT_SIGTERM_AT=k raises SIGTERM right after step k, so a
  // test can stop a run at a chosen point instead of racing a timer (kills: common/fault.hpp).
  const char* fault = std::getenv("WDLAB_FAULT_SIGTERM_AT");
  const std::int64_t sigterm_at = fault ? std::atoll(fault) : -1;
  MetricsLog log(run_dir);
  // At the start (fresh, or the epoch-0 checkpoint) every row goes, row 0 is written again below.
  const bool at_start = start.epoch == 0 && start.batch == 0;
  log.truncate_after(at_start ? -1 : start.epoch, start.iteration);
  double initial_loss = start.initial_loss;
  std::int64_t skipped = start.skipped_steps, skipped_in_a_row = 0;

  RunSummary summary;
  summary.epochs_done = start.epoch;
  std::int64_t iteration = start.iteration;
  const auto t0 = Clock::now();
  HostBatcher buf;
  std::vector<std::int64_t> ids64;  // the resident path's batch ids
  ProgressLine progress(cfg.progress);

  // A checkpoint at epoch 0 (written below) already holds the initialized factors.
  if (!from && start.epoch == 0 && start.batch == 0 && backend.wants_factor_init()) {
    // One pass over the training set in data order, no augmentation (roger_init).
    std::vector<std::uint32_t> ids(std::size_t(cfg.batch_size));
    for (std::int64_t b = 0; b < per_epoch; ++b) {
      for (int i = 0; i < cfg.batch_size; ++i) ids[i] = std::uint32_t(b * cfg.batch_size + i);
      if (path == DataPath::resident) {
        widen_ids(ids, ids64);
        backend.accumulate_factor_init_ids(IdBatch{DataSplit::train, ids64, AugmentSpec{}}, b);
      } else {
        backend.accumulate_factor_init(buf.fill(data.train, ids, AugmentSpec{}), b);
      }
    }
    backend.finish_factor_init();
  }

  // Rows record their probe set, unless this run started before those columns existed.
  ProbeColumns columns = ProbeColumns::record;
  for (const auto& r : log.rows(MetricsLog::Tail::tolerate_torn))
    if (!r.contains("event")) {
      if (uses_probe(cfg.metrics.groups) && !r.contains("probe_split")) columns = ProbeColumns::omit;
      break;
    }

  if (at_start) {
    // The epoch-0 row: the initial state (K-FAC's factor pass done), before the first step, and
    // its checkpoint, so that `wdlab measure` of it gives the same numbers. No running mean of
    // the training loss exists yet: train_loss/train_acc are the training set in evaluation mode.
    const auto te = Clock::now();
    nlohmann::ordered_json row;
    row["epoch"] = 0;
    row["iteration"] = 0;
    row["lr"] = cfg.lr(0, per_epoch);
    summary.train = evaluate(backend, data.train, DataSplit::train, cfg.eval_batch_size);
    row["train_loss"] = summary.train.loss();
    row["train_acc"] = summary.train.accuracy();
    row["skipped_steps"] = 0;
    evaluate_held_out(backend, data, cfg, summary, row);
    row["epoch_seconds"] = std::chrono::duration<double>(Clock::now() - te).count();
    add_epoch_metrics(backend, data, cfg, row["lr"].get<double>(), 0, epoch_steps, row, columns);
    log.append(row);
    progress.end_epoch(fmt::format("epoch 0 (initial state): train loss {:.4f} acc {:.4f} (eval mode) | test loss "
                                   "{:.4f} acc {:.4f}",
                                   summary.train.loss(), summary.train.accuracy(), summary.test.loss(),
                                   summary.test.accuracy()));
    save_checkpoint(backend, run_dir, Position{}, checkpoint_metadata, cfg.keep_checkpoints);
    if (const int sig = signals.pending(); sig != 0) throw Interrupted{sig};
  }

  for (int epoch = start.epoch + 1; epoch <= cfg.epochs; ++epoch) {
    const auto te = Clock::now();
    const auto order = data::epoch_permutation(n_train, cfg.seed, std::uint64_t(epoch - 1));
    const bool continuing = epoch == start.epoch + 1 && start.batch > 0;
    double loss_sum = continuing ? start.loss_sum : 0;
    std::int64_t correct = continuing ? start.correct : 0, seen = continuing ? start.seen : 0;
    double lr = 0;
    epoch_steps.clear();
    // Whole batches only: the last n_train mod batch_size examples of the order sit this epoch out.
    for (std::int64_t b = continuing ? start.batch : 0; b < per_epoch; ++b) {
      const std::span<const std::uint32_t> ids(order.data() + b * cfg.batch_size, std::size_t(cfg.batch_size));
      const AugmentSpec aug{cfg.augment, cfg.seed, std::uint64_t(iteration)};
      const bool poison = fault::nan_at(iteration);  // test hook (common/fault.hpp)
      lr = cfg.lr(iteration, per_epoch);
      StepStats s;
      if (path == DataPath::resident && !poison) {
        widen_ids(ids, ids64);
        s = backend.train_step_ids(IdBatch{DataSplit::train, ids64, aug}, lr, iteration);
      } else {
        // The host batch; on the resident path only for a step the hook poisons, since the
        // hook edits host memory (the backend takes both kinds of batch).
        const HostBatch batch = buf.fill(data.train, ids, aug);
        if (poison) buf.images()[0] = std::nanf("");
        s = backend.train_step(batch, lr, iteration);
      }
      const double batch_n = double(ids.size());
      fault::point("trainer.step", std::to_string(iteration));
      for (const StepEvent& ev : s.events) {
        auto row = event_row(ev.kind.c_str(), epoch, iteration);
        row["layer"] = ev.layer;
        row["detail"] = ev.detail;
        log.append_event(row);
      }
      if (!s.finite) {
        // Recorded before anything else; under abort the last checkpoint stays the newest state.
        auto row = event_row("nonfinite", epoch, iteration);
        row["tensor"] = s.nonfinite_tensor;
        row["layer"] = s.nonfinite_layer;
        row["loss"] = std::isfinite(s.loss) ? nlohmann::ordered_json(s.loss) : nlohmann::ordered_json(fmt::format("{}", s.loss));
        row["policy"] = cfg.on_nonfinite == NonfinitePolicy::abort ? "abort" : "skip";
        log.append_event(row);
        const std::string where = fmt::format("non-finite {}{} at epoch {} step {} (loss {})", s.nonfinite_tensor,
                                              s.nonfinite_layer.empty() ? "" : " in " + s.nonfinite_layer, epoch,
                                              iteration, s.loss);
        if (cfg.on_nonfinite == NonfinitePolicy::abort)
          throw NumericError(where + "; the run stops (--on-nonfinite abort), its last checkpoint is intact");
        if (++skipped_in_a_row > cfg.max_skips_in_a_row)
          throw NumericError(fmt::format("{}: {} steps in a row skipped (--on-nonfinite skip); the run stops", where,
                                         skipped_in_a_row));
        ++skipped;
      } else {
        skipped_in_a_row = 0;
        if (iteration == 0 || initial_loss == 0) initial_loss = s.loss;
        if (cfg.divergence_factor > 0 && s.loss > cfg.divergence_factor * initial_loss) {
          auto row = event_row("divergence", epoch, iteration);
          row["loss"] = s.loss;
          row["initial_loss"] = initial_loss;
          row["factor"] = cfg.divergence_factor;
          log.append_event(row);
          throw NumericError(fmt::format("diverged at epoch {} step {}: loss {:.6g} > {} x the initial {:.6g} "
                                         "(divergence_factor); the last checkpoint is intact",
                                         epoch, iteration, s.loss, cfg.divergence_factor, initial_loss));
        }
        loss_sum += s.loss * batch_n;
        epoch_steps.add(s.weight_steps);
        correct += s.correct;
        seen += std::int64_t(ids.size());
      }
      if (iteration == sigterm_at) std::raise(SIGTERM);
      if (fault::pause_at(iteration)) {  // test hook (common/fault.hpp): wait for a scheduler's signal
        fmt::print(stderr, "fault: paused after step {} until a signal\n", iteration);
        const auto until = Clock::now() + std::chrono::minutes(2);
        while (signals.pending() == 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (signals.pending() == 0) std::raise(SIGTERM);  // abandoned by its test: stop, leave no process
      }
      ++iteration;
      progress.update(epoch, cfg.epochs, b + 1, per_epoch, loss_sum / double(seen), double(correct) / double(seen));
      if (const int sig = signals.pending(); sig != 0 && b + 1 < per_epoch) {
        save_checkpoint(backend, run_dir,
                        Position{epoch - 1, iteration, b + 1, loss_sum, correct, seen, initial_loss, skipped},
                        checkpoint_metadata, cfg.keep_checkpoints);
        progress.end_epoch(fmt::format("signal {}: checkpoint written at epoch {} batch {}", sig, epoch, b + 1));
        throw Interrupted{sig};
      }
    }
    apply_norm_transfer(backend, cfg.wn, epoch);  // wn-conv (epoch_metrics.hpp); predictions unchanged
    nlohmann::ordered_json row;
    row["epoch"] = epoch;
    row["iteration"] = iteration;
    row["lr"] = lr;
    row["train_loss"] = seen ? loss_sum / double(seen) : std::nan("");
    row["train_acc"] = seen ? double(correct) / double(seen) : std::nan("");
    row["skipped_steps"] = skipped;
    summary.train = EvalStats{loss_sum, correct, seen};
    evaluate_held_out(backend, data, cfg, summary, row);
    row["epoch_seconds"] = std::chrono::duration<double>(Clock::now() - te).count();
    add_epoch_metrics(backend, data, cfg, lr, epoch, epoch_steps, row, columns);  // norm.*, elr.*, ... (measure.hpp)
    log.append(row);
    progress.end_epoch(fmt::format("epoch {}/{}: train loss {:.4f} acc {:.4f} | {}test loss {:.4f} acc {:.4f} | {:.1f} s",
                                   epoch, cfg.epochs, double(row["train_loss"]), double(row["train_acc"]),
                                   data.val.size() ? fmt::format("val acc {:.4f} | ", summary.val.accuracy()) : "",
                                   summary.test.loss(), summary.test.accuracy(), double(row["epoch_seconds"])));
    const int sig = signals.pending();
    if (epoch % cfg.checkpoint_every == 0 || epoch == cfg.epochs || sig != 0)
      save_checkpoint(backend, run_dir, Position{epoch, iteration, 0, 0, 0, 0, initial_loss, skipped},
                      checkpoint_metadata, cfg.keep_checkpoints);
    summary.epochs_done = epoch;
    if (sig != 0 && epoch < cfg.epochs) throw Interrupted{sig};
  }
  summary.iterations = iteration;
  summary.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return summary;
}

}  // namespace wdlab::train
