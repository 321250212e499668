# The plots of scripts/kl_sweep.sh. Paths and labels arrive as arguments
# (data), never pasted into gnuplot code, so any folder name works.
#
#   gnuplot -c scripts/plot_sweep.gp tradeoff SWEEP_DIR
#       SWEEP_DIR/score_vs_kl.png from SWEEP_DIR/sweep.csv: gold and proxy
#       score against KL (over-optimisation shows as the proxy rising while
#       gold stalls or falls)
#   gnuplot -c scripts/plot_sweep.gp steps SWEEP_DIR PNG COLUMN YLABEL "BETA..."
#       SWEEP_DIR/PNG: column COLUMN (a number) of each SWEEP_DIR/beta_B/metrics.csv
#       against the PPO iteration, one line per beta of the space-separated list
dir = ARG2
set terminal pngcairo size 800,500
set datafile separator ','
set grid
if (ARG1 eq 'tradeoff') {
  set output dir.'/score_vs_kl.png'
  set xlabel 'KL(policy || reference), nats per response'
  set ylabel 'held-out score'
  set key top left
  csv = dir.'/sweep.csv'
  plot csv every ::1 using 2:4:5 with yerrorlines title 'gold (annotator)', \
       csv every ::1 using 2:6:7 with yerrorlines title 'proxy (reward model)', \
       csv every ::1 using 2:4:(sprintf('%s', stringcolumn(1))) with labels offset 1,1 notitle
} else {
  set output dir.'/'.ARG3
  col = int(ARG4)
  betas = ARG6
  set key autotitle columnhead
  set xlabel 'PPO iteration'
  set ylabel ARG5
  plot for [i=1:words(betas)] dir.'/beta_'.word(betas, i).'/metrics.csv' using 1:col with lines title 'beta '.word(betas, i)
}
