package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/docker/go-units"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pocketkube/pocketkube/internal/node/image"
)

// NewImagesCommand returns `pocketkube images` and its subcommands, which
// manage the node's image store in DATA_DIR/images. They work while `up`
// runs on the same data directory.
func NewImagesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Manage the node's images: import, load, list, rm, pull",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newImagesImportCommand(), newImagesLoadCommand(), newImagesListCommand(),
		newImagesRemoveCommand(), newImagesPullCommand())
	return cmd
}

// storeOptions are the flags every images subcommand shares.
type storeOptions struct {
	dataDir string
}

func (o *storeOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.dataDir, "data-dir", DefaultDataDir, "Directory that holds the cluster; images are in DATA_DIR/images.")
}

func (o *storeOptions) Validate(_ []string) error {
	if o.dataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	return nil
}

func (o *storeOptions) open(ctx context.Context) (*image.Store, error) {
	return image.Open(ctx, image.Config{Dir: filepath.Join(o.dataDir, "images")})
}

type imagesImportOptions struct {
	storeOptions
	name       string
	file       string
	cmd        string
	entrypoint string
	env        []string
	workingDir string
	user       string
	changes    []string
}

func (o *imagesImportOptions) AddFlags(fs *pflag.FlagSet) {
	o.storeOptions.AddFlags(fs)
	fs.StringVar(&o.name, "name", "", "Name of the image, NAME[:TAG] (required).")
	fs.StringVar(&o.cmd, "cmd", "", `Default command: a JSON array ('["sh","-c","echo hi"]') or words ('sh -c date' runs sh with two arguments).`)
	fs.StringVar(&o.entrypoint, "entrypoint", "", "Entrypoint, in the same forms as --cmd.")
	fs.StringArrayVarP(&o.env, "env", "e", nil, "Environment variable KEY=VALUE of the image (repeatable).")
	fs.StringVarP(&o.workingDir, "workdir", "w", "", "Working directory of the image.")
	fs.StringVarP(&o.user, "user", "u", "", "User the image runs as.")
	fs.StringArrayVarP(&o.changes, "change", "c", nil, `Dockerfile instruction to apply, as docker import --change: CMD, ENTRYPOINT, ENV, WORKDIR or USER (repeatable).`)
}

func (o *imagesImportOptions) Validate(args []string) error {
	if err := o.storeOptions.Validate(args); err != nil {
		return err
	}
	if len(args) != 1 {
		return errors.New("give exactly one root filesystem tar (or - for stdin)")
	}
	o.file = args[0]
	if o.name == "" {
		return errors.New("--name is required")
	}
	if _, err := image.Normalize(o.name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	_, err := o.importOptions()
	return err
}

// importOptions turns the flags into image.ImportOptions; --change
// instructions apply after the other flags.
func (o *imagesImportOptions) importOptions() (image.ImportOptions, error) {
	opts := image.ImportOptions{Env: o.env, WorkingDir: o.workingDir, User: o.user}
	var err error
	if opts.Cmd, err = parseCommand("--cmd", o.cmd, false); err != nil {
		return opts, err
	}
	if opts.Entrypoint, err = parseCommand("--entrypoint", o.entrypoint, false); err != nil {
		return opts, err
	}
	for _, c := range o.changes {
		instr, arg, _ := strings.Cut(strings.TrimSpace(c), " ")
		arg = strings.TrimSpace(arg)
		switch strings.ToUpper(instr) {
		case "CMD":
			opts.Cmd, err = parseCommand("--change "+c, arg, true)
		case "ENTRYPOINT":
			opts.Entrypoint, err = parseCommand("--change "+c, arg, true)
		case "ENV":
			k, v, ok := strings.Cut(arg, "=")
			if !ok {
				k, v, ok = strings.Cut(arg, " ")
			}
			if !ok || k == "" {
				return opts, fmt.Errorf("--change %q: ENV needs KEY=VALUE", c)
			}
			opts.Env = append(opts.Env, k+"="+strings.Trim(v, `"`))
		case "WORKDIR":
			opts.WorkingDir = arg
		case "USER":
			opts.User = arg
		default:
			return opts, fmt.Errorf("--change %q: unsupported instruction %q (CMD, ENTRYPOINT, ENV, WORKDIR or USER)", c, instr)
		}
		if err != nil {
			return opts, err
		}
	}
	return opts, nil
}

// parseCommand reads a JSON array, or else words; Dockerfile's shell form
// (shell set) runs the words with /bin/sh -c, as docker does.
func parseCommand(flag, s string, shell bool) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(s), &argv); err != nil {
			return nil, fmt.Errorf("%s: %q is not a JSON array of strings: %w", flag, s, err)
		}
		return argv, nil
	}
	if shell {
		return []string{"/bin/sh", "-c", s}, nil
	}
	return strings.Fields(s), nil
}

func (o *imagesImportOptions) Run(cmd *cobra.Command, _ []string) error {
	opts, err := o.importOptions()
	if err != nil {
		return err
	}
	in := cmd.InOrStdin()
	if o.file != "-" {
		f, err := os.Open(o.file)
		if err != nil {
			return err // *fs.PathError names the file
		}
		defer f.Close()
		in = f
	}
	s, err := o.open(cmd.Context())
	if err != nil {
		return err
	}
	img, err := s.Import(cmd.Context(), o.name, in, opts)
	if err != nil {
		return fmt.Errorf("import %s: %w", o.file, err)
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), img.ID)
	return err
}

func newImagesImportCommand() *cobra.Command {
	return withOptions(&cobra.Command{
		Use:   "import --name NAME[:TAG] ROOTFS.tar|-",
		Short: "Create an image from a root filesystem tarball, as docker import does",
		Long: `Create an image from a root filesystem tarball (plain or gzip), as docker
import does, and print its ID. Use - to read the tarball from stdin.`,
		Example:      `  tar -C rootfs -c . | pocketkube images import --name busybox:local --cmd sh -`,
		SilenceUsage: true,
	}, &imagesImportOptions{})
}

type imagesLoadOptions struct {
	storeOptions
	input string
}

func (o *imagesLoadOptions) AddFlags(fs *pflag.FlagSet) {
	o.storeOptions.AddFlags(fs)
	fs.StringVarP(&o.input, "input", "i", "", "Archive to read (docker save or OCI layout tar); stdin when empty.")
}

func (o *imagesLoadOptions) Run(cmd *cobra.Command, _ []string) error {
	in := cmd.InOrStdin()
	what := "stdin"
	if o.input != "" {
		f, err := os.Open(o.input)
		if err != nil {
			return err // *fs.PathError names the file
		}
		defer f.Close()
		in, what = f, o.input
	}
	s, err := o.open(cmd.Context())
	if err != nil {
		return err
	}
	imgs, err := s.Load(cmd.Context(), in)
	if err != nil {
		return fmt.Errorf("load %s: %w", what, err)
	}
	for _, img := range imgs {
		if _, err := fmt.Fprintf(cmd.OutOrStdout(), "Loaded image: %s\n", image.Familiar(img.Name)); err != nil {
			return err
		}
	}
	return nil
}

func newImagesLoadCommand() *cobra.Command {
	return withOptions(&cobra.Command{
		Use:          "load [-i ARCHIVE.tar]",
		Short:        "Load images from a docker save or OCI archive, as docker load does",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
	}, &imagesLoadOptions{})
}

type imagesListOptions struct {
	storeOptions
	quiet bool
}

func (o *imagesListOptions) AddFlags(fs *pflag.FlagSet) {
	o.storeOptions.AddFlags(fs)
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "Print only image IDs.")
}

// Run prints the images as `crictl images` does.
func (o *imagesListOptions) Run(cmd *cobra.Command, _ []string) error {
	s, err := o.open(cmd.Context())
	if err != nil {
		return err
	}
	imgs, err := s.List(cmd.Context())
	if err != nil {
		return err
	}
	if o.quiet {
		for _, img := range imgs {
			fmt.Fprintln(cmd.OutOrStdout(), img.ID)
		}
		return nil
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 20, 1, 3, ' ', 0)
	fmt.Fprintln(w, "IMAGE\tTAG\tIMAGE ID\tSIZE")
	for _, img := range imgs {
		repo, tag := image.SplitName(img.Name)
		id := strings.TrimPrefix(img.ID, "sha256:")
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", repo, tag, id[:min(13, len(id))], units.HumanSizeWithPrecision(float64(img.Size), 3))
	}
	return w.Flush()
}

func newImagesListCommand() *cobra.Command {
	return withOptions(&cobra.Command{
		Use:          "list",
		Aliases:      []string{"ls"},
		Short:        "List images, as crictl images does",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
	}, &imagesListOptions{})
}

type imagesRemoveOptions struct {
	storeOptions
}

// Run removes every named image, going on after a failure, and reports
// every failure.
func (o *imagesRemoveOptions) Run(cmd *cobra.Command, names []string) error {
	s, err := o.open(cmd.Context())
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if err := s.Remove(cmd.Context(), n); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Deleted: %s\n", n)
	}
	return errors.Join(errs...)
}

func newImagesRemoveCommand() *cobra.Command {
	return withOptions(&cobra.Command{
		Use:          "rm NAME...",
		Aliases:      []string{"rmi", "remove"},
		Short:        "Remove images and the data only they used",
		Args:         cobra.MinimumNArgs(1),
		SilenceUsage: true,
	}, &imagesRemoveOptions{})
}

type imagesPullOptions struct {
	storeOptions
}

// Run pulls args[0] with the credentials of ~/.docker/config.json, if any.
func (o *imagesPullOptions) Run(cmd *cobra.Command, args []string) error {
	ref := args[0]
	s, err := o.open(cmd.Context())
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	img, err := s.Pull(cmd.Context(), ref, image.PullOptions{Auth: authn.DefaultKeychain, Progress: out})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "Digest: %s\nStatus: Downloaded image for %s\n%s\n", img.Digest, image.Familiar(img.Name), img.Name)
	return err
}

func newImagesPullCommand() *cobra.Command {
	return withOptions(&cobra.Command{
		Use:          "pull NAME",
		Short:        "Pull an image from its registry",
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
	}, &imagesPullOptions{})
}
