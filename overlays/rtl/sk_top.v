// sk_top: the sparse_kws IP: AXI4-Lite control, weight loader, N core copies behind a map-reduce
`default_nettype none
`timescale 1ns / 1ps

// Interface: pynq_sparse/core_interface.py (stream formats, REG map, weight image).
// Map: a distributor hands whole words round-robin to the copies' input FIFOs.
// Reduce: a collector takes results from the copies' output FIFOs in the same
// round-robin order (so in input order), stamps seq / model_id / flags and
// sends 8 beats (16 int32) per word.
module sk_top #(
    parameter N_COPIES      = 1,    // core copies (1..64); 20 for the U250 build, 1..2 for ZU3EG
    parameter IN_FIFO_DEPTH = 16,   // input beats buffered per copy in front of its two-word buffer
    parameter RES_DEPTH     = 2,    // results buffered per copy (power of two)
    parameter CONV1_PHASES  = 2,    // engine sizes of every copy (sk_core; 4 / 2 / 2 = the small ZU3EG-sized core)
    parameter CONV2_PHASES  = 1,
    parameter FC1_LANES     = 8,
    parameter CONV2_WBRAM   = 0,
    parameter CONV2_RBRAM   = 0,
    parameter FC1_PINGPONG  = 1
) (
    input  wire        clk,
    input  wire        rst,          // synchronous, active high

    // AXI4-Lite control (byte addresses, 32-bit registers)
    input  wire [11:0] s_axil_awaddr,
    input  wire [2:0]  s_axil_awprot,
    input  wire        s_axil_awvalid,
    output wire        s_axil_awready,
    input  wire [31:0] s_axil_wdata,
    input  wire [3:0]  s_axil_wstrb,
    input  wire        s_axil_wvalid,
    output wire        s_axil_wready,
    output wire [1:0]  s_axil_bresp,
    output wire        s_axil_bvalid,
    input  wire        s_axil_bready,
    input  wire [11:0] s_axil_araddr,
    input  wire [2:0]  s_axil_arprot,
    input  wire        s_axil_arvalid,
    output wire        s_axil_arready,
    output wire [31:0] s_axil_rdata,
    output wire [1:0]  s_axil_rresp,
    output wire        s_axil_rvalid,
    input  wire        s_axil_rready,

    // words in: 128 beats of 8 int8 cells; TLAST only on beat 127 (end of a transfer)
    input  wire [63:0] s_axis_tdata,
    input  wire        s_axis_tvalid,
    output wire        s_axis_tready,
    input  wire        s_axis_tlast,

    // results out: 8 beats (16 int32) per word; TLAST on the last beat of a word that had TLAST
    output wire [63:0] m_axis_tdata,
    output wire        m_axis_tvalid,
    input  wire        m_axis_tready,
    output wire        m_axis_tlast
);

localparam CW = (N_COPIES > 1) ? $clog2(N_COPIES) : 1;
localparam [31:0] CORE_VERSION = 32'h0001_0000;

initial begin
    if (N_COPIES < 1 || N_COPIES > 64) begin
        $error("sk_top: N_COPIES must be 1..64 (%m)");
        $finish;
    end
end

// ---------------------------------------------------------------- registers
wire        wr_en, rd_en, wr_ready;
wire [11:0] wr_addr, rd_addr;
wire [31:0] wr_data;
reg  [31:0] rd_data;

sk_axil_regs #(.ADDR_WIDTH(12)) regs_inst (
    .clk(clk), .rst(rst),
    .s_axil_awaddr(s_axil_awaddr), .s_axil_awprot(s_axil_awprot), .s_axil_awvalid(s_axil_awvalid),
    .s_axil_awready(s_axil_awready), .s_axil_wdata(s_axil_wdata), .s_axil_wstrb(s_axil_wstrb),
    .s_axil_wvalid(s_axil_wvalid), .s_axil_wready(s_axil_wready), .s_axil_bresp(s_axil_bresp),
    .s_axil_bvalid(s_axil_bvalid), .s_axil_bready(s_axil_bready), .s_axil_araddr(s_axil_araddr),
    .s_axil_arprot(s_axil_arprot), .s_axil_arvalid(s_axil_arvalid), .s_axil_arready(s_axil_arready),
    .s_axil_rdata(s_axil_rdata), .s_axil_rresp(s_axil_rresp), .s_axil_rvalid(s_axil_rvalid),
    .s_axil_rready(s_axil_rready),
    .wr_en(wr_en), .wr_addr(wr_addr), .wr_data(wr_data), .wr_ready(wr_ready),
    .rd_en(rd_en), .rd_addr(rd_addr), .rd_data(rd_data)
);

reg        soft_rst_reg = 1'b0;
reg        enable_reg = 1'b1;      // resets to 1: the core accepts words once a model is loaded
reg        clr_cnt_reg = 1'b0;
reg  [4:0] error_reg = 0;
wire       dp_rst = rst || soft_rst_reg;   // datapath reset (weights and counters survive a soft reset)

wire w_ctrl  = wr_en && wr_addr == 12'h000;
wire w_error = wr_en && wr_addr == 12'h008;
wire w_lctrl = wr_en && wr_addr == 12'h040;
wire w_ldata = wr_en && wr_addr == 12'h044;

// ---------------------------------------------------------------- loader
wire        ld_we;
wire [1:0]  ld_layer;
wire [2:0]  ld_sel;
wire [7:0]  ld_group;
wire [15:0] ld_addr;
wire [31:0] ld_data;
wire        loaded, loading, err_crc, err_shape, ld_ready;
wire [31:0] model_id, wl_count;

sk_loader loader_inst (
    .clk(clk), .rst(rst),
    .begin_load(w_lctrl && wr_data[0]), .commit(w_lctrl && wr_data[1]),
    .s_word(wr_data), .s_valid(w_ldata), .s_ready(ld_ready),
    .ld_we(ld_we), .ld_layer(ld_layer), .ld_sel(ld_sel), .ld_group(ld_group), .ld_addr(ld_addr),
    .ld_data(ld_data), .loaded(loaded), .loading(loading), .model_id(model_id), .word_count(wl_count),
    .err_crc(err_crc), .err_shape(err_shape)
);
assign wr_ready = ld_ready;

// ---------------------------------------------------------------- distributor (map)
reg  [6:0]    beat_reg = 0;
reg  [CW-1:0] dsel_reg = 0;
reg           drop_reg = 1'b0;
wire [N_COPIES-1:0] in_ready, in_valid;
wire          drop_now = (beat_reg == 0) ? !loaded : drop_reg;
assign s_axis_tready = enable_reg && !dp_rst && (drop_now || in_ready[dsel_reg]);
wire          in_take = s_axis_tvalid && s_axis_tready;
wire          err_tlast_ev = in_take && s_axis_tlast && beat_reg != 7'd127;
wire          err_nomodel_ev = in_take && beat_reg == 0 && !loaded;
wire          word_in_ev = in_take && beat_reg == 7'd127 && !drop_now;

always @(posedge clk) begin
    if (in_take) begin
        if (beat_reg == 0) drop_reg <= !loaded;
        if (s_axis_tlast && beat_reg != 7'd127) begin
            beat_reg <= 0;                       // framing error: the copy drops the partial word too
        end else if (beat_reg == 7'd127) begin
            beat_reg <= 0;
            if (!drop_now) dsel_reg <= (dsel_reg == N_COPIES - 1) ? 0 : dsel_reg + 1'b1;
        end else begin
            beat_reg <= beat_reg + 1'b1;
        end
    end
    if (dp_rst) begin
        beat_reg <= 0;
        dsel_reg <= 0;
        drop_reg <= 1'b0;
    end
end

// ---------------------------------------------------------------- copies
wire [393*N_COPIES-1:0] res_data;
wire [N_COPIES-1:0] res_valid, res_ready, copy_busy, copy_stall, copy_done, fifo_nonempty;
wire [32*N_COPIES-1:0] cw_flat, cb_flat, cs_flat;   // per-copy counters (words, busy, stall)

genvar i;
generate
for (i = 0; i < N_COPIES; i = i + 1) begin : copy
    wire [64:0] q;
    wire        q_valid, q_ready;
    wire [$clog2(IN_FIFO_DEPTH):0] cnt;
    assign in_valid[i] = in_take && !drop_now && dsel_reg == i;
    sk_fifo #(.WIDTH(65), .DEPTH(IN_FIFO_DEPTH), .AFULL_SLACK(1)) in_fifo_inst (
        .clk(clk), .rst(dp_rst), .s_data({s_axis_tlast, s_axis_tdata}), .s_valid(in_valid[i]),
        .s_ready(in_ready[i]), .s_afull(), .m_data(q), .m_valid(q_valid), .m_ready(q_ready), .count(cnt)
    );
    assign fifo_nonempty[i] = q_valid || cnt != 0;
    sk_core #(.RES_DEPTH(RES_DEPTH), .CONV1_PHASES(CONV1_PHASES), .CONV2_PHASES(CONV2_PHASES),
              .FC1_LANES(FC1_LANES), .CONV2_WBRAM(CONV2_WBRAM), .CONV2_RBRAM(CONV2_RBRAM),
              .FC1_PINGPONG(FC1_PINGPONG)) core_inst (
        .clk(clk), .rst(dp_rst),
        .ld_we(ld_we), .ld_layer(ld_layer), .ld_sel(ld_sel), .ld_group(ld_group), .ld_addr(ld_addr),
        .ld_data(ld_data),
        .s_axis_tdata(q[63:0]), .s_axis_tvalid(q_valid), .s_axis_tready(q_ready), .s_axis_tlast(q[64]),
        .m_res_data(res_data[393*i +: 393]), .m_res_valid(res_valid[i]), .m_res_ready(res_ready[i]),
        .busy(copy_busy[i]), .stall(copy_stall[i]), .word_done(copy_done[i])
    );

    // per-copy counters
    reg [31:0] words_reg = 0, busy_reg = 0, stall_reg = 0;
    always @(posedge clk) begin
        if (copy_done[i]) words_reg <= words_reg + 1;
        if (copy_busy[i]) busy_reg <= busy_reg + 1;
        if (copy_stall[i]) stall_reg <= stall_reg + 1;
        if (rst || clr_cnt_reg) begin
            words_reg <= 0;
            busy_reg <= 0;
            stall_reg <= 0;
        end
    end
    assign cw_flat[32*i +: 32] = words_reg;
    assign cb_flat[32*i +: 32] = busy_reg;
    assign cs_flat[32*i +: 32] = stall_reg;
end
endgenerate

// ---------------------------------------------------------------- collector (reduce)
reg  [CW-1:0] csel_reg = 0;
reg  [2:0]    obeat_reg = 0;
reg  [31:0]   seq_reg = 0;
wire [392:0]  cur = res_data[393*csel_reg +: 393];
wire [511:0]  result = {{31'd0, cur[392]}, model_id, seq_reg, {24'd0, cur[391:384]}, cur[383:0]};
assign m_axis_tvalid = res_valid[csel_reg];
assign m_axis_tdata = result[obeat_reg*64 +: 64];
assign m_axis_tlast = (obeat_reg == 3'd7) && cur[392];
wire out_take = m_axis_tvalid && m_axis_tready;
wire word_out_ev = out_take && obeat_reg == 3'd7;
generate
for (i = 0; i < N_COPIES; i = i + 1) begin : pop
    assign res_ready[i] = word_out_ev && csel_reg == i;
end
endgenerate

always @(posedge clk) begin
    if (out_take) begin
        obeat_reg <= obeat_reg + 1'b1;
        if (obeat_reg == 3'd7) begin
            seq_reg <= seq_reg + 1;
            csel_reg <= (csel_reg == N_COPIES - 1) ? 0 : csel_reg + 1'b1;
        end
    end
    if (dp_rst) begin
        obeat_reg <= 0;
        csel_reg <= 0;
        seq_reg <= 0;
    end
end

// ---------------------------------------------------------------- control, status, counters
reg [31:0] words_in_reg = 0, words_out_reg = 0, busy_cycles_reg = 0, stall_cycles_reg = 0, cycles_reg = 0;
wire any_busy = |copy_busy || |fifo_nonempty || |res_valid || beat_reg != 0;

always @(posedge clk) begin
    soft_rst_reg <= w_ctrl && wr_data[0];
    clr_cnt_reg <= w_ctrl && wr_data[2];
    if (w_ctrl) enable_reg <= wr_data[1];

    if (w_error) error_reg <= error_reg & ~wr_data[4:0];
    if (err_tlast_ev) error_reg[0] <= 1'b1;
    if (err_crc) error_reg[1] <= 1'b1;
    if (err_shape) error_reg[2] <= 1'b1;
    if (err_nomodel_ev) error_reg[3] <= 1'b1;

    cycles_reg <= cycles_reg + 1;
    if (word_in_ev) words_in_reg <= words_in_reg + 1;
    if (word_out_ev) words_out_reg <= words_out_reg + 1;
    if (|copy_busy) busy_cycles_reg <= busy_cycles_reg + 1;
    if (m_axis_tvalid && !m_axis_tready) stall_cycles_reg <= stall_cycles_reg + 1;
    if (clr_cnt_reg) begin
        words_in_reg <= 0;
        words_out_reg <= 0;
        busy_cycles_reg <= 0;
        stall_cycles_reg <= 0;
    end

    if (rst) begin
        soft_rst_reg <= 1'b0;
        clr_cnt_reg <= 1'b0;
        enable_reg <= 1'b1;
        error_reg <= 0;
        cycles_reg <= 0;
        words_in_reg <= 0;
        words_out_reg <= 0;
        busy_cycles_reg <= 0;
        stall_cycles_reg <= 0;
    end
end

// read mux
wire [6:0] rd_copy = rd_addr[10:4] - 7'd16;   // copy i at 0x100 + 16*i
reg [31:0] copy_field;
integer j;
always @* begin
    copy_field = 32'd0;
    for (j = 0; j < N_COPIES; j = j + 1) begin
        if (rd_copy == j) begin
            case (rd_addr[3:2])
                2'd0: copy_field = cw_flat[32*j +: 32];
                2'd1: copy_field = cb_flat[32*j +: 32];
                default: copy_field = cs_flat[32*j +: 32];
            endcase
        end
    end
end


always @* begin
    case (rd_addr)
        12'h000: rd_data = {30'd0, enable_reg, 1'b0};
        12'h004: rd_data = {28'd0, loading, |error_reg, loaded, !any_busy};
        12'h008: rd_data = {27'd0, error_reg};
        12'h00C: rd_data = loaded ? model_id : 32'd0;
        12'h010: rd_data = N_COPIES;
        12'h014: rd_data = CORE_VERSION;
        12'h020: rd_data = words_in_reg;
        12'h024: rd_data = words_out_reg;
        12'h028: rd_data = busy_cycles_reg;
        12'h02C: rd_data = stall_cycles_reg;
        12'h030: rd_data = cycles_reg;
        12'h048: rd_data = wl_count;
        default: rd_data = (rd_addr >= 12'h100 && rd_addr < 12'h100 + 16 * N_COPIES) ? copy_field : 32'd0;
    endcase
end

endmodule

`resetall
