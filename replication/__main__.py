from replication.cli import main
from replication.lifetime import end_with_parent

end_with_parent()  # a command whose starter was killed (kill -9 of `dvc repro`) ends too, workers and all
raise SystemExit(main())
