# Every plot of the scripts, with the settings they share; scripts/common.sh's
# plot() runs it. Paths and labels arrive as arguments (data), never pasted
# into gnuplot code, so any folder name works, quotes and semicolons included.
#
#   gnuplot -c scripts/plot.gp training RUN SFT RM PPO
#       RUN/training.png: the training curves of pretrain and, when the
#       argument is 1, of sft, train_rm (rm/) and ppo
#   gnuplot -c scripts/plot.gp tradeoff SWEEP_DIR
#       SWEEP_DIR/score_vs_kl.png from SWEEP_DIR/sweep.csv: gold and proxy
#       score against KL, each point labelled with its beta, and the SFT
#       reference at KL 0
#   gnuplot -c scripts/plot.gp steps SWEEP_DIR NAME COLUMN YLABEL "BETA..."
#       SWEEP_DIR/NAME.png: column COLUMN (a name) of each
#       SWEEP_DIR/beta_B/metrics.csv against the PPO iteration, one line per
#       beta of the space-separated list
#
# With -e "format = 'svg'" before -c, the same figures are drawn as SVG
# (NAME.svg beside NAME.png): text with coordinates, which tests/test_plots.c
# reads back to check labels and legends.
#
# A reader must be able to read each panel alone: every axis names its
# quantity and unit, and the legend sits outside the data (below the panel),
# where it cannot hide the end of a curve.
set encoding utf8
set datafile separator ','
set datafile columnheaders
# An empty field (a step without evaluation) is skipped, not a break in the
# line, in expressions too.
set datafile missing NaN
set grid
set key outside below center horizontal Left reverse samplen 2 height 1.5
set style data lines
kind = ARG1
if (!exists('format')) format = 'png'
# Sets the terminal for a figure of width x height pixels.
set_terminal = "if (format eq 'svg') { set terminal svg size width, height font 'Arial,12' } else { set terminal pngcairo size width, height }"
loss_per_token = 'loss (nats per token)'
step_label = 'step (optimiser updates)'

if (kind eq 'training') {
  run = ARG2
  # One row per stage pair that ran: the stages run in order, so RM without
  # SFT or PPO without RM cannot happen.
  # PPO takes two rows: its rollouts, then its held-out evaluations.
  rows = (ARG5 eq '1') ? 4 : (ARG4 eq '1') ? 2 : 1
  width = 1200; height = 420 * rows; eval set_terminal
  set output run.'/training.'.format
  set multiplot layout rows, 2
  set xlabel step_label
  set ylabel loss_per_token
  set title 'pretrain: next-token loss'
  plot run.'/pretrain/metrics.csv' using 'step':'loss' title 'training batch', \
       '' using 'step':'val_loss' with linespoints title 'validation set'
  if (ARG3 eq '1') {
    set title 'sft: loss on response tokens'
    plot run.'/sft/metrics.csv' using 'step':'loss' title 'training batch', \
         '' using 'step':'val_loss' with linespoints title 'held-out responses'
  }
  if (ARG4 eq '1') {
    rm = run.'/rm/metrics.csv'
    set title 'reward model: pairwise loss'
    set ylabel 'loss (nats per pair, -log σ(margin))'
    plot rm using 'step':'loss' title 'training batch', '' using 'step':'val_loss' with linespoints title 'held-out pairs'
    set title 'reward model: accuracy'
    set ylabel 'accuracy (% of pairs)'
    plot rm using 'step':(100 * column('accuracy')) title 'training batch vs labels', \
         '' using 'step':(100 * column('val_accuracy')) with linespoints title 'held-out vs labels', \
         '' using 'step':(100 * column('val_gold_accuracy')) with linespoints title 'held-out vs gold order'
  }
  if (ARG5 eq '1') {
    ppo = run.'/ppo/metrics.csv'
    set xlabel 'PPO iteration'
    set title 'ppo: score of the rollouts'
    set ylabel 'score per response (mean over rollouts)'
    plot ppo using 'step':'score' title 'reward-model score (normalised; optimised)', \
         '' using 'step':'gold' title 'gold score (annotator; never seen)'
    set title 'ppo: distance from the reference (SFT) policy'
    set ylabel 'KL (nats per response)'
    plot ppo using 'step':'kl' title 'KL, k1 estimate (penalised)', '' using 'step':'kl_k3' title 'KL, k3 estimate', \
         '' using 'step':'kl_full' title 'KL, full vocabulary', \
         run.'/ppo/heldout.csv' using 'step':'kl_full' with linespoints pt 7 title 'held-out KL, full vocabulary'
    held = run.'/ppo/heldout.csv'
    # From iteration 0, whether or not the run evaluated along the way (one row).
    set xrange [0:*]
    set title 'ppo: held-out prompts along training'
    set ylabel 'score per response (mean ± standard error)'
    plot held using 'step':'gold':'gold_se' with yerrorlines pt 7 title 'gold score (annotator)', \
         '' using 'step':'rm_score':'rm_score_se' with yerrorlines pt 5 title 'reward-model score (normalised)'
    set title 'ppo: reward model against gold on the policy''s own samples'
    set ylabel 'pairs ordered as gold orders them (%)'
    plot held using 'step':(100 * column('rm_gold_agreement')):(100 * column('rm_gold_agreement_se')) \
         with yerrorlines pt 7 title 'agreement on pairs of held-out samples (same prompt)', \
         50 dt 2 lc 'black' title 'chance'
  }
  unset multiplot
} else {
  if (kind eq 'tradeoff') {
    dir = ARG2
    csv = dir.'/sweep.csv'
    width = 900; height = 600; eval set_terminal
    set output dir.'/score_vs_kl.'.format
    set title 'held-out score against distance from the reference, one point per β'
    set xlabel 'KL(policy ‖ reference), nats per response'
    set ylabel 'held-out score (mean ± standard error)'
    set offsets graph 0.08, graph 0.08, graph 0.08, graph 0.08
    beta_label(b) = sprintf('β = %s', b)
    # Labels alternate above and below their points, so that two betas with
    # nearly the same KL keep apart labels: dy is 4% of the scores' span.
    stats csv using 'gold' name 'G' nooutput
    stats csv using 'rm_score' name 'R' nooutput
    span = (G_max > R_max ? G_max : R_max) - (G_min < R_min ? G_min : R_min)
    dy = 0.04 * (span > 0 ? span : 1)
    label_y(y) = y + (int($0) % 2 ? -dy : dy)
    # The two reference labels move apart: the lower point's down, the
    # higher one's up.
    stats csv using 'ref_gold' name 'RG' nooutput
    stats csv using 'ref_rm_score' name 'RR' nooutput
    apart = RG_min < RR_min ? dy : -dy
    # The reference row repeats on every line of sweep.csv: one point is drawn.
    plot csv using 'kl':'gold':'gold_se' with yerrorlines pt 7 title 'gold score (annotator)', \
         '' using 'kl':'rm_score':'rm_score_se' with yerrorlines pt 5 title 'proxy: reward-model score', \
         '' using 'kl':(label_y(column('gold'))):(beta_label(strcol('beta'))) with labels left offset 1, 0 notitle, \
         '' using 'kl':(label_y(column('rm_score'))):(beta_label(strcol('beta'))) with labels left offset 1, 0 notitle, \
         '' every ::0::0 using (0):'ref_gold' with points pt 6 ps 2 lc 'black' title 'reference (SFT): gold', \
         '' every ::0::0 using (0):'ref_rm_score' with points pt 4 ps 2 lc 'black' title 'reference (SFT): reward model', \
         '' every ::0::0 using (0):(column('ref_gold') - apart):('SFT') with labels right offset -1.5, 0 notitle, \
         '' every ::0::0 using (0):(column('ref_rm_score') + apart):('SFT') with labels right offset -1.5, 0 notitle
  } else {
    dir = ARG2
    col = ARG4
    betas = ARG6
    width = 900; height = 550; eval set_terminal
    set output dir.'/'.ARG3.'.'.format
    set xlabel 'PPO iteration'
    set ylabel ARG5
    set key outside right top vertical Left reverse title 'KL coefficient'
    # Dash types tell apart lines that coincide (the same seed makes the
    # first iterations of every beta alike).
    plot for [i=1:words(betas)] dir.'/beta_'.word(betas, i).'/metrics.csv' using 'step':(column(col)) dt i lw 1.5 \
         title 'β = '.word(betas, i)
  }
}
