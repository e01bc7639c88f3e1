from dejavu.core import logs
from dejavu.attack import score

logs.to_file(snakemake.log[0])
score.run(snakemake.input.knn_a, snakemake.input.knn_b, snakemake.output.json,
          snakemake.output.curves, out_boot=snakemake.output.boot,
          **dict(snakemake.params.items()))
logs.finish()
