"""Entry point of the //tensorflow_serving/model_servers:tensorflow_model_server binary."""

import sys

from tensorflow_serving.model_servers.main import main

if __name__ == "__main__":
    sys.exit(main())
