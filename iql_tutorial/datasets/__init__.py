"""Making this book's datasets: behaviour policies (SAC), rollouts, recipes, point-maze data and
writing Minari datasets. Training never imports this subpackage (``import iql_tutorial.runs.train``
stays off h5py and the SAC code; a test checks it)."""
