// StreamHandoff: what the two threads of a full-context `genomamba score` job share.
//
// One thread reads the records, builds their strand jobs and writes finished records; the
// other streams each contig through the model. A contig's jobs are handed over while the
// records are still being read (the stream takes them as it reaches their positions), and
// the stream reports how far the scores are final (so records are written while the model
// still runs). Everything sits under one lock; waits end early when either side fails
// (StreamHandoff::Stopped), and the job's driver rethrows the first real error.
//
// Positions are forward-strand 0-based. A contig's "advance" P means: every record of it
// that starts before P has had its jobs added.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "pipelines/score_alleles.h"
#include "pipelines/score_engine.h"
#include "pipelines/score_sequence.h"

namespace gm {

class StreamHandoff {
 public:
  // Thrown by a wait when the other side failed (or the job is being torn down).
  struct Stopped : std::runtime_error {
    Stopped() : std::runtime_error("the other thread of the score job stopped") {}
  };
  struct Progress {
    int64_t final_before = 0;  // forward LLRs of jobs at positions before this are final
    bool all_final = false;     // every job of the contig is final
    bool operator==(const Progress&) const = default;
  };

  // ---- reading side ----
  // A new contig whose jobs follow; `incremental`: the stream may take them while they are
  // still being added (forward-strand LLR only). Returns the contig's index (0, 1, ...).
  int open_contig(std::shared_ptr<const ContigTokens> seq, bool incremental);
  // Newest contig: every record before forward_pos added (call it with a record's start
  // before adding that record's jobs).
  void advance(int64_t forward_pos);
  void add_job(StrandJob* job, int64_t record_pos);  // to the newest contig, record_pos >= its advance
  void close_contig();                  // newest contig: every record added
  void finish_input();                  // no more contigs
  Progress progress(int contig) const;
  // Blocks until contig's progress differs from `seen`.
  void wait_progress(int contig, const Progress& seen);

  // ---- streaming side ----
  // The next contig (blocks); false at the end of the input.
  bool next_contig(int& index, std::shared_ptr<const ContigTokens>& seq, bool& incremental);
  // Moves the jobs of contig's records that start before forward_pos (or all, with
  // kAllPositions) that were not taken before into `out`; blocks until they are all added.
  // Returns the seconds it waited.
  double take_before(int contig, int64_t forward_pos, std::vector<StrandJob*>& out);
  // Whether every record of the contig was added and every job taken.
  bool exhausted(int contig) const;
  void set_final_before(int contig, int64_t forward_pos);
  void set_all_final(int contig);

  // ---- either side ----
  // Records the first error and wakes every wait (which then throws Stopped).
  void fail(std::exception_ptr error);
  std::exception_ptr error() const;

 private:
  struct Contig {
    std::shared_ptr<const ContigTokens> seq;
    bool incremental = false;
    std::vector<StrandJob*> jobs;  // added
    std::vector<int64_t> job_record_pos;  // forward start of each job's record
    size_t taken = 0;
    int64_t advanced = 0;
    bool closed = false;
    Progress progress;
  };
  Contig& contig_locked(int index);
  const Contig& contig_locked(int index) const;
  void throw_if_failed_locked() const;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Contig> contigs_;  // every contig opened (addresses stable)
  size_t handed_ = 0;           // contigs given to the streaming side
  bool input_done_ = false;
  int64_t stream_wants_ = -1;   // the stream waits for advance >= this on the newest contig
  std::exception_ptr error_;
};

// One contig of a StreamHandoff as the engine's job source (score_engine.h).
class HandoffJobSource final : public StrandJobSource {
 public:
  HandoffJobSource(StreamHandoff& handoff, int contig, bool incremental)
      : handoff_(handoff), contig_(contig), incremental_(incremental) {}
  bool incremental() const override { return incremental_; }
  void take_before(int64_t forward_pos, std::vector<StrandJob*>& out) override {
    wait_seconds_ += handoff_.take_before(contig_, forward_pos, out);
  }
  bool exhausted() override { return handoff_.exhausted(contig_); }
  void final_before(int64_t forward_pos) override { handoff_.set_final_before(contig_, forward_pos); }
  double wait_seconds() const { return wait_seconds_; }

 private:
  StreamHandoff& handoff_;
  int contig_;
  bool incremental_;
  double wait_seconds_ = 0;
};

}  // namespace gm
