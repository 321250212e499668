# Training curves of a pipeline run in one figure: RUN/training.png.
#
#   gnuplot -c scripts/plot_training.gp RUN PRETRAIN SFT RM PPO
#
# RUN is the run folder; each of the other four is 1 when that stage's
# metrics.csv exists (pipeline.sh checks) and 0 otherwise. The run folder is
# taken as data (ARG1) and never pasted into gnuplot code, so any folder name
# works, quotes and semicolons included.
run = ARG1
set terminal pngcairo size 1200,800
set output run.'/training.png'
set datafile separator ','
set key autotitle columnhead
set grid
set xlabel 'step'
set multiplot layout 2,2
if (ARG2 eq '1') {
  set title 'pretrain'
  plot run.'/pretrain/metrics.csv' using 1:4 with lines title 'loss', '' using 1:5 with linespoints title 'validation loss'
}
if (ARG3 eq '1') {
  set title 'sft'
  plot run.'/sft/metrics.csv' using 1:4 with lines title 'loss', '' using 1:5 with linespoints title 'held-out response loss'
}
if (ARG4 eq '1') {
  set title 'reward model'
  plot run.'/rm/metrics.csv' using 1:4 with lines title 'loss', '' using 1:8 with linespoints title 'held-out accuracy vs gold'
}
if (ARG5 eq '1') {
  set title 'ppo'
  set y2tics
  plot run.'/ppo/metrics.csv' using 1:2 with lines title 'reward-model score', '' using 1:16 with lines title 'gold', \
       '' using 1:4 with lines axes x1y2 title 'KL (right axis)'
}
unset multiplot
